-- One row per submission with only its key, times and load order: what the counting views
-- (submissions, over time, freshness) read for the tail. stg_pisa__responses would clean
-- 85 columns of every tail row on every publish just to count it.

with

source as (

    select * from {{ source('pisa', 'responses') }}

),

final as (

    select
        source.id,
        source.created_at,
        source._loaded_at,
        source._load_seq,
        upper(btrim(source.cnt)) as cnt

    from source

)

select * from final
