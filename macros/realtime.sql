{#-
    The lock that makes dbt's run of int_student_indices and the real-time loop's
    incremental step of the same model (src/pisa_pulse/realtime/advance.py) exclude each other.
    The loop only tries it (and skips a turn); dbt waits for it.
-#}
{% macro student_indices_lock() -%}
    select pg_advisory_xact_lock(hashtext('pulse.int_student_indices'))
{%- endmacro %}

{#- Pre-hook of country_index_state: while it runs, no rescore (src/pisa_pulse/indices/rescore.py) can queue a
    country, so its post-hook may empty calibration.rescored_countries without losing one. -#}
{% macro country_state_lock() -%}
    select pg_advisory_xact_lock(hashtext('pulse.country_index_state'))
{%- endmacro %}

{#-
    Post-hook of the additive state tables. Each dbt tick rewrites their few dozen rows, so
    autovacuum's default thresholds vacuumed and analysed them every other tick, and every
    vacuum or analyse invalidates the plans the publisher keeps prepared (three serving
    views re-planned at ~130 ms each: a publication of 0.6 s instead of 0.05 s). Statistics
    of a table this small do not matter to any plan; dead rows are still vacuumed, every
    few thousand. The options are set once (ALTER TABLE itself invalidates the plans).
-#}
{% macro realtime_state_table_options() -%}
    do $options$
    begin
        if not exists (
            select 1 from pg_class
            where oid = '{{ this }}'::regclass
            and reloptions @> array['autovacuum_analyze_threshold=2000000000']
        ) then
            alter table {{ this }} set (
                autovacuum_vacuum_threshold = 5000,
                autovacuum_vacuum_scale_factor = 0,
                autovacuum_analyze_threshold = 2000000000
            );
        end if;
    end
    $options$
{%- endmacro %}

{#-
    Post-hook of the seeds and the small parameter tables the per-student index logic joins:
    statistics at once. A table dbt just created has none (autovacuum gets to it a minute
    later, or never for a table that is not written again), the planner then assumed a few
    hundred rows per table and default selectivities, the estimates of the index view's
    dozen lookup joins multiplied to hundreds of millions of rows, and the hash joins
    planned thousands of batches: 0.4 s per advance however few the new rows (measured at
    200,000 rows; 11 ms once analysed). The loop prepares that plan once, so it must be
    right from the start.
-#}
{% macro analyze_lookup_table() -%}
    analyze {{ this }}
{%- endmacro %}
