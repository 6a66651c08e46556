{{
    config(
        materialized='incremental',
        unique_key=['cnt', 'id'],
        incremental_strategy='delete+insert',
        on_schema_change='append_new_columns',
        tags=['realtime'],
        indexes=[
            {'columns': ['cnt', 'id'], 'unique': true},
            {'columns': ['_load_seq']},
        ],
        pre_hook="{{ student_indices_lock() }}",
        post_hook="{{ student_indices_drop_tombstoned() }}",
    )
}}

-- The per-student indices, materialised incrementally on the warehouse load order. Rows
-- tombstoned after they were copied here are removed by the post-hook. Between dbt ticks
-- `pulse run` applies the same incremental step after every loader tick
-- (src/pisa_pulse/realtime/advance.py), so each row's indices are computed once and the serving
-- views read the tail from here; the pre-hook's lock keeps the two apart.

with

live as (

    select live_rows.* from {{ ref('int_student_indices_live') }} as live_rows
    {%- if is_incremental() %}
        where {{ marts_beyond_mark('live_rows', 'select coalesce(max(done._load_seq), 0) from ' ~ this ~ ' as done') }}
    {%- endif %}

),

final as (

    select * from live

)

-- The columns are int_student_indices_live's, listed (and documented) there.
select * from final  -- noqa: AM04
