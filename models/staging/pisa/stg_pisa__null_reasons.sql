-- depends_on: {{ ref('codebook_items') }}
{%- set items = pisa_codebook_items() %}
{%- set columns = pisa_declared_columns() | selectattr('item', 'in', items) | list %}

with

source as (

    select * from {{ source('pisa', 'responses') }}

),

final as (

    select
        upper(btrim(source.cnt)) as cnt,
        source.id,
        source._load_seq,
        reasons.column_name,
        reasons.reason

    from source
    cross join lateral (
        values
        {%- for col in columns %}
            ('{{ col.column }}', {{ pisa_null_reason(col.column, items[col.item]) }}){{ "," if not loop.last }}
        {%- endfor %}
    ) as reasons (column_name, reason)
    where reasons.reason is not null

)

select * from final
