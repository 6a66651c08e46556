{{ config(materialized='table', post_hook="{{ analyze_lookup_table() }}") }}

-- PARED years per country and HISCED level: the observed seed (FRA, ITA, MEX) first,
-- then one value per country and level learned from rows carrying official PARED, fixed
-- for the cycle (seed learned_pared_years, written by `pulse params learn`): a row is
-- scored with the same table whenever it arrives, as in a from-scratch rebuild.

with

observed as (

    select * from {{ ref('pared_years_by_country_observed') }}

),

learned as (

    select * from {{ ref('learned_pared_years') }}

),

final as (

    select
        cnt,
        hisced,
        pared_years,
        'seed' as pared_rule,
        n_in_sample::bigint as n_rows

    from observed

    union all

    select
        learned.cnt,
        learned.hisced,
        learned.pared_years,
        'learned' as pared_rule,
        learned.n_rows

    from learned
    where not exists (
        select 1 from observed
        where observed.cnt = learned.cnt and observed.hisced = learned.hisced
    )

)

select * from final
