with

source as (
    select * from {{ source('pisa', 'loader_sources') }}
),

final as (
    select
        cnt,
        status,
        rows_loaded,
        rows_per_s,
        newest_created_at,
        lag_ms,
        last_polled_at,
        last_error,
        last_error_at
    from source
)

select * from final
