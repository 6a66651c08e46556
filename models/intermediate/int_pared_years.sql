{{ config(materialized='table') }}

-- PARED years per country and HISCED level: the observed seed (FRA, ITA, MEX) first,
-- then one value per country and level learned from rows carrying official PARED.

with

observed as (

    select * from {{ ref('pared_years_by_country_observed') }}

),

responses as (

    select * from {{ ref('stg_pisa__responses') }}

),

learned as (

    select
        cnt,
        hisced,
        mode() within group (order by pared) as pared_years,
        count(*) as n_rows

    from responses
    where hisced is not null and pared is not null
    group by cnt, hisced

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
