{{ config(materialized='view', tags=['learning']) }}

-- What the warehouse's rows teach about ISEI: per ISCO-08 code, the most frequent official
-- BMMJ1/BFMJ2. Not read by the indices: `pulse params learn` writes it to the seed
-- learned_isei_map.

with

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

final as (

    select
        isco08,
        mode() within group (order by isei) as isei,
        count(*) as n_rows

    from official_pairs
    group by isco08

)

select * from final
