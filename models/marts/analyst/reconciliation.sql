{#-
    Computed vs official, per index and country (and 'ALL'): over students whose row carries
    the OECD's value and for whom the pipeline computed one. Tolerances: exact indices 1e-4
    (float noise), BELONG 0.002, HOMEPOS and ESCS 0.01 (docs/indices.md). `n_disagree` counts
    the rows beyond the tolerance; `served_rule` says which of the two values is served
    (index_computed_wins, docs/domains.md).
-#}
{{ config(materialized='table', tags=['slow']) }}
{%- set tolerances = {
    'tmins': 0.0001, 'lmins': 0.0001, 'mmins': 0.0001, 'smins': 0.0001,
    'durecec': 0.0001, 'misced': 0.0001, 'fisced': 0.0001, 'hisced': 0.0001,
    'misced_d': 0.0001, 'fisced_d': 0.0001, 'hisced_d': 0.0001,
    'paredint': 0.0001, 'pared': 0.0001, 'bmmj1': 0.0001, 'bfmj2': 0.0001, 'hisei': 0.0001,
    'homepos': 0.01, 'belong': 0.002, 'escs': 0.01,
} %}

with

students as (
    select * from {{ ref('int_student_indices') }}
),

-- one row per student and index with a computed or an official value
pairs as (
    {%- for x, tolerance in tolerances.items() %}
        select
            students.cnt,
            '{{ x }}' as index_name,
            {{ tolerance }}::double precision as tolerance,
            '{{ "computed when valid" if index_computed_wins(x, "students") else "official when present" }}' as served_rule,
            students.{{ x }}_official as official,
            students.{{ x }}_computed as computed
        from students
        where students.{{ x }}_official is not null or students.{{ x }}_computed is not null
        {%- if not loop.last %}

            union all
        {% endif %}
    {%- endfor %}
),

final as (
    select
        pairs.index_name,
        coalesce(pairs.cnt, 'ALL') as country,
        max(pairs.tolerance) as tolerance,
        max(pairs.served_rule) as served_rule,
        count(pairs.official) as n_official,
        count(pairs.computed) as n_computed,
        count(*) filter (where pairs.official is not null and pairs.computed is not null) as n_compared,
        count(*) filter (where pairs.official is not null and pairs.computed is null) as n_official_only,
        count(*) filter (where pairs.official is null and pairs.computed is not null) as n_computed_only,
        count(*) filter (
            where abs(pairs.computed - pairs.official) > pairs.tolerance + 1e-9
        ) as n_disagree,
        avg(abs(pairs.computed - pairs.official))::double precision as mean_abs_diff,
        max(abs(pairs.computed - pairs.official))::double precision as max_abs_diff,
        avg(
            case when abs(pairs.computed - pairs.official) <= pairs.tolerance + 1e-9 then 1.0 else 0.0 end
        ) filter (where pairs.official is not null and pairs.computed is not null)::double precision as share_within_tolerance,
        avg(pairs.computed - pairs.official)::double precision as mean_diff
    from pairs
    group by grouping sets ((pairs.index_name, pairs.cnt), (pairs.index_name))
)

select * from final
