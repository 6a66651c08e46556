{#-
    The one written copy of the SQL that dbt's models and the Python side share: the advisory
    locks and the tombstone step of int_student_indices, as functions in schema `intermediate`
    created by the on-run-start hook `realtime_create_objects()` (dbt_project.yml). The model
    hooks call them, and so do the real-time loop's advance (src/pisa_pulse/realtime/advance.py)
    and the rescore after a calibration (src/pisa_pulse/indices/rescore.py), which only name
    them (src/pisa_pulse/core/names.py). Neither Python path runs before dbt built
    int_student_indices, and that build ran this hook first; a warehouse built before these
    functions existed gets them from the next dbt invocation (every dbt tick runs the hook).

    - pulse_lock_student_indices(): dbt's run of int_student_indices and the loop's
      incremental step of the same model exclude each other; dbt waits (pre-hook),
      pulse_try_lock_student_indices() is the loop's try (it skips a turn when false).
    - pulse_lock_country_state(): pre-hook of country_index_state: while it runs, no rescore
      can queue a country, so its post-hook may empty calibration.rescored_countries without
      losing one.
    - pulse_drop_tombstoned_student_indices(): post-hook of int_student_indices: a row removed
      from a source after it was copied there goes away (returns the rows deleted). PL/pgSQL,
      so a session (the loop's, every ~100 ms) plans the delete once.
-#}
{% macro _realtime_functions() %}
    {{ return([
        {
            'name': 'pulse_lock_student_indices',
            'returns': 'void',
            'body': "\nbegin\n    perform pg_advisory_xact_lock(hashtext('pulse.int_student_indices'));\nend\n",
        },
        {
            'name': 'pulse_try_lock_student_indices',
            'returns': 'boolean',
            'body': "\nbegin\n    return pg_try_advisory_xact_lock(hashtext('pulse.int_student_indices'));\nend\n",
        },
        {
            'name': 'pulse_lock_country_state',
            'returns': 'void',
            'body': "\nbegin\n    perform pg_advisory_xact_lock(hashtext('pulse.country_index_state'));\nend\n",
        },
        {
            'name': 'pulse_drop_tombstoned_student_indices',
            'returns': 'bigint',
            'body': _realtime_drop_tombstoned_body(),
        },
    ]) }}
{% endmacro %}

{% macro _realtime_drop_tombstoned_body() %}
declare
    n bigint;
begin
    delete from intermediate.int_student_indices as t
    using staging.stg_loader__responses_deleted as d
    where d.cnt = t.cnt and d.id = t.id and d._load_seq > t._load_seq;
    get diagnostics n = row_count;
    return n;
end
{% endmacro %}

{#- On-run-start: create or replace a function only when missing or changed (this hook runs on
    every dbt tick, and concurrent CREATE OR REPLACE of one function can fail). -#}
{% macro realtime_create_objects() %}
    {%- set functions = _realtime_functions() -%}
    {%- set current = {} -%}
    {%- if execute -%}
        {%- set found = run_query(
            "select p.proname, md5(p.prosrc) from pg_proc as p join pg_namespace as n"
            ~ " on n.oid = p.pronamespace where n.nspname = 'intermediate' and p.proname like 'pulse\\_%'"
        ) -%}
        {%- for row in found.rows -%}
            {%- do current.update({row[0]: row[1]}) -%}
        {%- endfor -%}
    {%- endif -%}
    {%- set stale = [] -%}
    {%- for fn in functions if current.get(fn.name) != local_md5(fn.body) -%}
        {%- do stale.append(fn) -%}
    {%- endfor -%}
    {%- if stale %}
create schema if not exists intermediate;
        {%- for fn in stale %}
create or replace function intermediate.{{ fn.name }}()
returns {{ fn.returns }} language plpgsql volatile
as $pulse${{ fn.body }}$pulse$;
        {%- endfor %}
    {%- endif %}
{% endmacro %}


{% macro student_indices_lock() -%}
    select intermediate.pulse_lock_student_indices()
{%- endmacro %}

{#- The ref keeps the model after the tombstones' view in dbt's graph (the function reads it). -#}
{% macro student_indices_drop_tombstoned() -%}
    {%- do ref('stg_loader__responses_deleted') -%}
    select intermediate.pulse_drop_tombstoned_student_indices()
{%- endmacro %}

{% macro country_state_lock() -%}
    select intermediate.pulse_lock_country_state()
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
