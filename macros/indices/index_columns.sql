{#-
    Which value of index `x` is served, the official one the row carries or the one rebuilt
    from its answers (docs/domains.md, "Official vs computed"). For the indices rebuilt
    exactly from the answers, a valid value computed from complete answers is the better
    witness of a corrupted official cell, so it wins; for the others (scaled indices whose parameters are only
    approximated here) the official value wins when present. Both values have passed their
    domain checks in staging already. Returns the SQL condition under which the computed
    value wins, or none when the official value always wins.
-#}
{% macro index_computed_wins(x, a) -%}
    {%- set exact_isei = "('observed', 'learned', 'isei08')" -%}
    {%- if x in ['tmins', 'lmins', 'mmins', 'smins', 'durecec'] -%}
        {#- computed only from complete answers (both factors), else NULL -#}
        {{ return(a ~ '.' ~ x ~ '_computed is not null') }}
    {%- elif x in ['paredint', 'pared'] -%}
        {#- from both parents' answers: one parent's alone may understate the highest level -#}
        {%- set suffix = '_d' if x == 'paredint' else '' -%}
        {{ return(
            a ~ '.' ~ x ~ '_computed is not null'
            ~ ' and ' ~ a ~ '.misced' ~ suffix ~ '_computed is not null'
            ~ ' and ' ~ a ~ '.fisced' ~ suffix ~ '_computed is not null'
        ) }}
    {%- elif x in ['bmmj1', 'bfmj2'] -%}
        {{ return(a ~ '.' ~ x ~ '_rule in ' ~ exact_isei) }}
    {%- elif x == 'hisei' -%}
        {#- both parents' codes in the map PISA 2018 used -#}
        {{ return(
            a ~ '.bmmj1_rule in ' ~ exact_isei ~ ' and ' ~ a ~ '.bfmj2_rule in ' ~ exact_isei
        ) }}
    {%- endif -%}
    {{ return(none) }}
{%- endmacro %}

{#- The served value of index `x` (see index_computed_wins). -#}
{% macro index_served(x, a) -%}
    {%- set wins = index_computed_wins(x, a) -%}
    {%- if wins -%}
        case when {{ wins }} then {{ a }}.{{ x }}_computed else coalesce({{ a }}.{{ x }}_official, {{ a }}.{{ x }}_computed) end
    {%- else -%}
        coalesce({{ a }}.{{ x }}_official, {{ a }}.{{ x }}_computed)
    {%- endif -%}
{%- endmacro %}

{#- The four contract columns of index `x`, from `x_computed` and `x_official` of relation `alias`. -#}
{% macro index_columns(x, alias) -%}
    {%- set wins = index_computed_wins(x, alias) -%}
        {{ alias }}.{{ x }}_computed,
        {{ alias }}.{{ x }}_official,
        {{ index_served(x, alias) }} as {{ x }},
        case
        {%- if wins %}
            when {{ wins }} then 'computed'
        {%- endif %}
            when {{ alias }}.{{ x }}_official is not null then 'official'
            when {{ alias }}.{{ x }}_computed is not null then 'computed'
        end as {{ x }}_source
{%- endmacro %}

{#- The indices int_student_indices carries, in contract order. -#}
{% macro student_index_names() -%}
    {{ return([
        'tmins', 'lmins', 'mmins', 'smins', 'durecec',
        'misced', 'fisced', 'hisced', 'misced_d', 'fisced_d', 'hisced_d',
        'paredint', 'pared', 'bmmj1', 'bfmj2', 'hisei', 'homepos', 'belong', 'escs',
    ]) }}
{%- endmacro %}

{#- ISCED level from ST005Q01TA / ST007Q01TA codes: 1→4, 2→3, 3→2, 4→1, 5→0. -#}
{% macro isced_level(column) -%}
    (5 - {{ column }})
{%- endmacro %}

{#-
    MISCED/FISCED: 6 if either ISCED 6/5A qualification is "Yes" (1), else at least 5 if
    5B is "Yes", else at least 4 if ISCED 4 is "Yes", else the schooling level. With
    `restricted`, the qualifications count only when the schooling answer is 1, 2 or 3 (_D).
-#}
{% macro parent_isced(alias, schooling, q1, q2, q3, q4, restricted=false) -%}
    {%- set level = isced_level(alias ~ '.' ~ schooling) -%}
    {%- set gate = (alias ~ '.' ~ schooling ~ ' in (1, 2, 3) and ') if restricted else '' -%}
    case
        when {{ gate }}({{ alias }}.{{ q1 }} = 1 or {{ alias }}.{{ q2 }} = 1) then 6
        when {{ gate }}{{ alias }}.{{ q3 }} = 1 then greatest(5, {{ level }})
        when {{ gate }}{{ alias }}.{{ q4 }} = 1 then greatest(4, {{ level }})
        else {{ level }}
    end
{%- endmacro %}
