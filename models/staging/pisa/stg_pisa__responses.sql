-- depends_on: {{ ref('codebook_items') }}
{%- set items = pisa_codebook_items() %}

with

source as (

    select * from {{ source('pisa', 'responses') }}

),

final as (

    select
        upper(btrim(cnt)) as cnt,
        id,
        created_at,
        _loaded_at,
        _load_seq,
        {%- for col in pisa_declared_columns() %}
        {{ pisa_clean_value(col.column, col.item, items) }} as {{ col.column }}{{ "," if not loop.last }}
        {%- endfor %}

    from source

)

select * from final
