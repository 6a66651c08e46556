{#- Values the staging model set to NULL, by country, column and reason (for analysts). -#}
{{ config(tags=['serving']) }}

with

nulled_values as (
    select * from {{ ref('int_data_quality__nulled_values') }}
),

final as (
    select
        nulled_values.cnt as country,
        nulled_values.column_name,
        nulled_values.reason,
        nulled_values.values_nulled,
        nulled_values.max_load_seq
    from nulled_values
)

select * from final
