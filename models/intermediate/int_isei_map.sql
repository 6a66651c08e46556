{{ config(materialized='table', post_hook="{{ analyze_lookup_table() }}") }}

-- ISCO-08 code → ISEI as PISA 2018 used it: the observed 2018 map first, then codes
-- learned from rows carrying official BMMJ1/BFMJ2, fixed for the cycle (seed
-- learned_isei_map, written by `pulse params learn`). Group and Ganzeboom fallbacks are
-- applied by the indices model (it records which rule gave each value).

with

observed as (

    select * from {{ ref('isco08_to_isei_pisa2018_observed') }}

),

learned as (

    select * from {{ ref('learned_isei_map') }}

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
