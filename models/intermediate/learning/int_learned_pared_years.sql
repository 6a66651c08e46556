{{ config(materialized='view', tags=['learning']) }}

-- What the warehouse's rows teach about PARED: per country and HISCED level, the most
-- frequent official PARED. Not read by the indices: `pulse params learn` writes it to the
-- seed learned_pared_years, so the parameters stay fixed while rows stream in.

with

responses as (

    select * from {{ ref('stg_pisa__responses') }}

),

final as (

    select
        cnt,
        hisced,
        mode() within group (order by pared) as pared_years,
        count(*) as n_rows

    from responses
    where hisced is not null and pared is not null
    group by cnt, hisced

)

select * from final
