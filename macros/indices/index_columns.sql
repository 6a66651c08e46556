{#- The four contract columns of index `x`, from `x_computed` and `x_official` of relation `alias`. -#}
{% macro index_columns(x, alias) -%}
        {{ alias }}.{{ x }}_computed,
        {{ alias }}.{{ x }}_official,
        coalesce({{ alias }}.{{ x }}_official, {{ alias }}.{{ x }}_computed) as {{ x }},
        case
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
