{{ config(materialized='table') }}

-- A country's own BELONG value per response pattern, learned from rows carrying the
-- official BELONG. Countries with their own item parameters (France for Q03) differ
-- from the international lookup; for them this map is the only exact source.

with

responses as (

    select * from {{ ref('stg_pisa__responses') }}

),

patterns as (

    select
        responses.cnt,
        responses.belong,
        {{ belong_pattern_key('responses') }} as pattern_key

    from responses
    where
        responses.belong is not null
        and {{ belong_n_valid('responses') }} >= 3

),

final as (

    select
        cnt,
        pattern_key,
        mode() within group (order by belong) as belong_value,
        count(*) as n_rows,
        count(distinct belong) as n_distinct_values

    from patterns
    group by cnt, pattern_key

)

select * from final
