{{ config(materialized='view', tags=['serving']) }}

with

{{ marts_state_plus_tail_ctes(['escs']) }},

final as (
    select
        country_totals.cnt as country,
        {{ marts_mean('escs', 'country_totals') }} as value,  -- noqa: RF04
        country_totals.escs_n as n,
        {{ marts_is_weighted('escs', 'country_totals') }} as weighted
    from country_totals
)

select * from final
