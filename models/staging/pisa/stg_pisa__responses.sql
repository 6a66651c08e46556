-- depends_on: {{ ref('codebook_items') }}
{%- set items = pisa_codebook_items() %}
{%- set columns = pisa_declared_columns() %}

with

source as (

    select * from {{ source('pisa', 'responses') }}

),

-- Each cell is trimmed once and parsed once: the lateral subqueries (OFFSET 0 keeps the
-- planner from copying their expressions into every check) hold the intermediate values.
-- The `_load_seq` filters of the views above still reach raw's index through `source`.
final as (

    select
        upper(btrim(source.cnt)) as cnt,
        source.id,
        source.created_at,
        source._loaded_at,
        source._load_seq,
        {%- for col in columns %}
        {{ pisa_valid_value('parsed.' ~ col.column, items.get(col.item)) }} as {{ col.column }}{{ "," if not loop.last }}
        {%- endfor %}

    from source
    cross join lateral (
        select
            {%- for col in columns %}
            {{ pisa_trimmed('source.' ~ col.column) }} as {{ col.column }}{{ "," if not loop.last }}
            {%- endfor %}
        offset 0
    ) as trimmed
    cross join lateral (
        select
            {%- for col in columns %}
            {{ pisa_parsed('trimmed.' ~ col.column, items.get(col.item)) }} as {{ col.column }}{{ "," if not loop.last }}
            {%- endfor %}
        offset 0
    ) as parsed

)

select * from final
