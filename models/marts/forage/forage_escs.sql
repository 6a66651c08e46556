with

{{ marts_state_plus_tail_ctes(['escs']) }},

-- A country's ESCS is provisional while its HOMEPOS is scored with the DEFAULT block: no
-- seed block and no calibration yet (docs/homepos.md). A country int_homepos_params does
-- not list scores with DEFAULT too.
homepos_params as (
    select
        cnt,
        provisional
    from {{ ref('int_homepos_params') }}
),

final as (
    select
        country_totals.cnt as country,
        {{ marts_mean('escs', 'country_totals') }} as value,  -- noqa: RF04
        country_totals.escs_n as n,
        {{ marts_is_weighted('escs', 'country_totals') }} as weighted,
        coalesce(homepos_params.provisional, true) as escs_provisional
    from country_totals
    left join homepos_params on country_totals.cnt = homepos_params.cnt
)

select * from final
