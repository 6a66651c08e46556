{#-
    BELONG item scores (docs/indices.md): Q01, Q04, Q06 score raw − 1; the positively
    worded Q02, Q03, Q05 score 4 − raw. The pattern key is the six scores in item order,
    9 for a missing item, as in seeds/belong_wle_lookup_international.csv.
-#}
{% macro belong_item_score(alias, item) -%}
    {%- if item in ['st034q02ta', 'st034q03ta', 'st034q05ta'] -%}
        (4 - {{ alias }}.{{ item }})
    {%- else -%}
        ({{ alias }}.{{ item }} - 1)
    {%- endif -%}
{%- endmacro %}

{% macro belong_items() -%}
    {{ return(['st034q01ta', 'st034q02ta', 'st034q03ta', 'st034q04ta', 'st034q05ta', 'st034q06ta']) }}
{%- endmacro %}

{% macro belong_pattern_key(alias) -%}
    ({%- for item in belong_items() -%}
        coalesce({{ belong_item_score(alias, item) }}::text, '9'){{ " || " if not loop.last }}
    {%- endfor -%})
{%- endmacro %}

{% macro belong_n_valid(alias) -%}
    ({%- for item in belong_items() -%}
        ({{ alias }}.{{ item }} is not null)::integer{{ " + " if not loop.last }}
    {%- endfor -%})
{%- endmacro %}
