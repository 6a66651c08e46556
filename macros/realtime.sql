{#-
    The lock that makes dbt's run of int_student_indices and the real-time loop's
    incremental step of the same model (pulse/realtime/advance.py) exclude each other.
    The loop only tries it (and skips a turn); dbt waits for it.
-#}
{% macro student_indices_lock() -%}
    select pg_advisory_xact_lock(hashtext('pulse.int_student_indices'))
{%- endmacro %}
