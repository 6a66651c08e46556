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

-- And while a new block is being applied: from the calibration's commit (its marker) until
-- the rescore (marker gone, country queued) and the dbt run that recomputes the country's
-- state (queue emptied). int_homepos_params has the new block before the rows do.
rescoring as (
    select pending.cnt
    from {{ ref('stg_calibration__rescore_pending') }} as pending

    union

    select queued.cnt
    from {{ ref('stg_calibration__rescored_countries') }} as queued
),

final as (
    select
        country_totals.cnt as country,
        {{ marts_mean('escs', 'country_totals') }} as value,  -- noqa: RF04
        country_totals.escs_n as n,
        {{ marts_is_weighted('escs', 'country_totals') }} as weighted,
        coalesce(homepos_params.provisional, true)
        or rescoring.cnt is not null as escs_provisional
    from country_totals
    left join homepos_params on country_totals.cnt = homepos_params.cnt
    left join rescoring on country_totals.cnt = rescoring.cnt  -- union: one row a country
)

select * from final
