-- depends_on: {{ ref('codebook_items') }}
{%- set items = pisa_codebook_items() %}
{%- set columns = pisa_declared_columns() %}

with

source as (

    select * from {{ source('pisa', 'responses') }}

),

-- Each cell is read once, in one lateral subquery (OFFSET 0 keeps the planner from copying
-- its expressions into every check above it): the cleaned value itself when the cell is
-- spelled as real rows spell it (a valid value as stored, or 'NA'), else the parsed value,
-- checked above (macros pisa_fast_step / pisa_fast_value; every other spelling goes through
-- pisa_trimmed → pisa_parsed → pisa_valid_value exactly as before). The `_load_seq` filters
-- of the views above still reach raw's index through `source`, and a reader's unused columns
-- are not computed.
-- Issue 12, measured 2026-12-02 on 5,076 distinct real rows, warm HOMEPOS cache, medians
-- (command: docs/realtime.md, "Cost of a row"): this view 0.203 → 0.045 ms a row,
-- int_student_indices_live 0.247 → 0.115 ms a row (before: two lateral steps, a regex per cell).
final as (

    select
        upper(btrim(source.cnt)) as cnt,
        source.id,
        source.created_at,
        source._loaded_at,
        source._load_seq,
        {%- for col in columns %}
        {{ pisa_fast_value('parsed.' ~ col.column, items.get(col.item)) }} as {{ col.column }}{{ "," if not loop.last }}
        {%- endfor %}

    from source
    cross join lateral (
        select
            {%- for col in columns %}
            {{ pisa_fast_step('source.' ~ col.column, items.get(col.item)) }} as {{ col.column }}{{ "," if not loop.last }}
            {%- endfor %}
        offset 0
    ) as parsed

)

select * from final
