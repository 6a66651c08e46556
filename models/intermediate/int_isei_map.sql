{{ config(materialized='table') }}

-- ISCO-08 code → ISEI as PISA 2018 used it: the observed 2018 map first, then codes
-- learned from rows carrying official BMMJ1/BFMJ2. Group and Ganzeboom fallbacks are
-- applied by the indices model (it records which rule gave each value).

with

observed as (

    select * from {{ ref('isco08_to_isei_pisa2018_observed') }}

),

responses as (

    select * from {{ ref('stg_pisa__responses') }}

),

official_pairs as (

    select
        ocod1 as isco08,
        bmmj1 as isei
    from responses
    where ocod1 is not null and bmmj1 is not null

    union all

    select
        ocod2 as isco08,
        bfmj2 as isei
    from responses
    where ocod2 is not null and bfmj2 is not null

),

learned as (

    select
        isco08,
        mode() within group (order by isei) as isei,
        count(*) as n_rows

    from official_pairs
    group by isco08

),

final as (

    select
        isco08,
        isei_pisa2018 as isei,
        'observed' as isei_rule,
        n_students::bigint as n_rows

    from observed

    union all

    select
        learned.isco08,
        learned.isei,
        'learned' as isei_rule,
        learned.n_rows

    from learned
    where not exists (
        select 1 from observed
        where observed.isco08 = learned.isco08
    )

)

select * from final
