{{ config(materialized='table', post_hook="{{ analyze_lookup_table() }}") }}

-- A country's own BELONG value per response pattern, fixed for the cycle (seed
-- learned_belong_country_patterns, learned by `pulse params learn` from rows carrying the
-- official BELONG). Countries with their own item parameters (France for Q03) differ from
-- the international lookup; for them this map is the only exact source.

with

learned as (

    select * from {{ ref('learned_belong_country_patterns') }}

),

final as (

    select
        cnt,
        pattern_key,
        belong_value,
        n_rows,
        n_distinct_values

    from learned

)

select * from final
