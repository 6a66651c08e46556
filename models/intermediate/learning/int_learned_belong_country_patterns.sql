{{ config(materialized='view', tags=['learning']) }}

-- What the warehouse's rows teach about BELONG: a country's own value per response pattern,
-- from rows carrying the official BELONG. Not read by the indices: `pulse params learn`
-- writes it to the seed learned_belong_country_patterns.

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
