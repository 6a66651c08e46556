with

source as (
    select * from {{ source('pisa', 'responses_deleted') }}
),

final as (
    select
        cnt,
        id,
        _load_seq,
        _deleted_at
    from source
)

select * from final
