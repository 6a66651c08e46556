{#-
    Additive per-country pieces of the marts (models/marts/).

    Every piece is a count or a `numeric` sum, so that adding a batch to the state gives,
    digit for digit, what one aggregate over all rows gives (float sums would depend on the
    order of addition). A double precision value converts to numeric deterministically
    (15 significant digits), and numeric addition and multiplication are exact.
-#}

{% macro marts_state_indices() -%}
    {{ return(['tmins', 'durecec', 'belong', 'escs', 'hisei', 'homepos', 'pared', 'paredint']) }}
{%- endmacro %}

{% macro marts_index_pieces(index) -%}
    {{ return(['n', 'n_w', 'n_official', 'sum_w', 'sum_wx', 'sum_x', 'sum_xx']) }}
{%- endmacro %}

{#- The additive pieces of each index over per-student rows of relation `alias` (aggregates). -#}
{% macro marts_index_sums(alias, indices) -%}
    {%- for x in indices %}
    count({{ alias }}.{{ x }}) as {{ x }}_n,
    count({{ alias }}.{{ x }}) filter (where {{ alias }}.w_fstuwt > 0) as {{ x }}_n_w,
    count({{ alias }}.{{ x }}) filter (where {{ alias }}.{{ x }}_source = 'official') as {{ x }}_n_official,
    coalesce(sum({{ alias }}.w_fstuwt::numeric) filter (
        where {{ alias }}.w_fstuwt > 0 and {{ alias }}.{{ x }} is not null
    ), 0) as {{ x }}_sum_w,
    coalesce(sum({{ alias }}.w_fstuwt::numeric * {{ alias }}.{{ x }}::numeric) filter (
        where {{ alias }}.w_fstuwt > 0
    ), 0) as {{ x }}_sum_wx,
    coalesce(sum({{ alias }}.{{ x }}::numeric), 0) as {{ x }}_sum_x,
    coalesce(sum({{ alias }}.{{ x }}::numeric * {{ alias }}.{{ x }}::numeric), 0) as {{ x }}_sum_xx{{ ',' if not loop.last }}
    {%- endfor %}
{%- endmacro %}

{#- Zero for every piece: the row that makes an emptied country's old state row go away. -#}
{% macro marts_index_zeros(indices) -%}
    {%- for x in indices %}
    {%- set outer_last = loop.last %}
    {%- for piece in marts_index_pieces(x) %}
    0 as {{ x }}_{{ piece }}{{ ',' if not (outer_last and loop.last) }}
    {%- endfor %}
    {%- endfor %}
{%- endmacro %}

{#- sum() of every piece, for adding up rows of pieces (state + batch, state + tail). -#}
{% macro marts_index_sum_of_pieces(indices, alias=none) -%}
    {%- set prefix = alias ~ '.' if alias else '' %}
    {%- for x in indices %}
    {%- set outer_last = loop.last %}
    {%- for piece in marts_index_pieces(x) %}
    sum({{ prefix }}{{ x }}_{{ piece }}){{ '::bigint' if piece.startswith('n') }} as {{ x }}_{{ piece }}{{ ',' if not (outer_last and loop.last) }}
    {%- endfor %}
    {%- endfor %}
{%- endmacro %}

{#- The list of piece columns of each index (for select lists). -#}
{% macro marts_index_columns(indices, alias=none) -%}
    {%- set prefix = alias ~ '.' if alias else '' %}
    {%- for x in indices %}
    {%- set outer_last = loop.last %}
    {%- for piece in marts_index_pieces(x) %}
    {{ prefix }}{{ x }}_{{ piece }}{{ ',' if not (outer_last and loop.last) }}
    {%- endfor %}
    {%- endfor %}
{%- endmacro %}

{#-
    The country mean of index `x` from its pieces: weighted by W_FSTUWT (Σw·x / Σw over rows
    with a positive weight) when any row with a value carries one, else the plain mean.
-#}
{% macro marts_mean(x, alias=none) -%}
    {%- set p = alias ~ '.' if alias else '' -%}
    case
        when {{ p }}{{ x }}_sum_w > 0 then ({{ p }}{{ x }}_sum_wx / {{ p }}{{ x }}_sum_w)::double precision
        when {{ p }}{{ x }}_n > 0 then ({{ p }}{{ x }}_sum_x / {{ p }}{{ x }}_n)::double precision
    end
{%- endmacro %}

{#- Whether marts_mean(x) is weighted (null when there is no value at all). -#}
{% macro marts_is_weighted(x, alias=none) -%}
    {%- set p = alias ~ '.' if alias else '' -%}
    case when {{ p }}{{ x }}_n > 0 then {{ p }}{{ x }}_sum_w > 0 end
{%- endmacro %}

{#- The numeric (unrounded) country mean; marts_mean casts it to double precision. -#}
{% macro marts_mean_numeric(x, alias=none) -%}
    {%- set p = alias ~ '.' if alias else '' -%}
    case
        when {{ p }}{{ x }}_sum_w > 0 then {{ p }}{{ x }}_sum_wx / {{ p }}{{ x }}_sum_w
        when {{ p }}{{ x }}_n > 0 then {{ p }}{{ x }}_sum_x / {{ p }}{{ x }}_n
    end
{%- endmacro %}

{#-
    CTEs `country_state`, `tail_students`, `tail`, `country_totals`: the serving views' per-country
    pieces = the additive state (country_index_state) + the live rows beyond its mark.
    The tail's indices come from int_student_indices, which `pulse run` keeps up to the loader
    between dbt ticks (each row computed once), plus the live rows it has not reached yet,
    computed here through int_student_indices_live (a view over staging over raw, so the
    `_load_seq >` filter reaches raw.responses' index: it costs what the new rows cost).
    Every live row beyond the state's mark is in exactly one branch: the table holds every
    live row up to its own newest `_load_seq`. Only the `indices` asked for are read.
-#}
{% macro marts_state_plus_tail_ctes(indices) -%}
{%- set tail_columns -%}
    cnt, w_fstuwt
    {%- for x in indices %}, {{ x }}, {{ x }}_source{% endfor %}
{%- endset -%}
country_state as (
    select * from {{ ref('country_index_state') }}
),

computed_students as (
    select * from {{ ref('int_student_indices') }}
),

live_students as (
    select * from {{ ref('int_student_indices_live') }}
),

tail_students as (
    select {{ tail_columns }}
    from computed_students
    where
        {{ marts_beyond_mark(
            'computed_students', 'select coalesce(max(country_state._load_seq_mark), 0) from country_state'
        ) }}

    union all

    select {{ tail_columns }}
    from live_students
    where
        {{ marts_beyond_mark('live_students', marts_computed_mark_sql()) }}
        -- Evaluated once, before the branch runs (no column of the row in it): when every
        -- row is computed, as after each loader tick, the index logic is never started.
        -- Without it the branch cost ~15 ms with no rows (sorting lookup tables for joins).
        and exists (
            select 1
            from {{ ref('stg_pisa__submissions') }} as pending
            where {{ marts_beyond_mark('pending', marts_computed_mark_sql()) }}
        )
),

tail as (
    select
        tail_students.cnt,
        count(*) as submissions,
        {{ marts_index_sums('tail_students', indices) }}
    from tail_students
    group by tail_students.cnt
),

pieces as (
    select
        country_state.cnt,
        country_state.submissions,
        {{ marts_index_columns(indices, 'country_state') }}
    from country_state

    union all

    select * from tail
),

country_totals as (
    select
        pieces.cnt,
        sum(pieces.submissions)::bigint as submissions,
        {{ marts_index_sum_of_pieces(indices, 'pieces') }}
    from pieces
    group by pieces.cnt
    having sum(pieces.submissions) > 0
)
{%- endmacro %}

{#- The newest `_load_seq` whose indices are computed: the state's mark or, beyond it,
    int_student_indices' newest row (a backward scan of its `_load_seq` index). The table is
    named here, not through the CTE `computed_students`: a CTE read twice is materialised,
    which copied the whole table on every publish (measured: 50 ms at 55,000 rows). -#}
{% macro marts_computed_mark_sql() -%}
select greatest(
    (select coalesce(max(country_state._load_seq_mark), 0) from country_state),
    (select coalesce(max(done._load_seq), 0) from {{ ref('int_student_indices') }} as done)
)
{%- endmacro %}

{#-
    `<relation>._load_seq` beyond the state's mark (`mark_sql`, a scalar subquery). The
    constant upper bound is always true; it is there for the planner: with the mark unknown
    at plan time, `> (subquery)` alone is estimated at a third of the table and can turn the
    tail into a (parallel) sequential scan of raw.responses, while a two-sided range is
    estimated at 0.5% and keeps the index scan on _load_seq.
-#}
{% macro marts_beyond_mark(relation, mark_sql) -%}
    {{ relation }}._load_seq > ({{ mark_sql }})
    and {{ relation }}._load_seq < 9223372036854775807
{%- endmacro %}


{#- The CTEs both additive state models share, after `previous` (this model's rows),
    `students` and `tombstones`: the marks the state covers, the countries whose new
    tombstones force a recompute, and the students to (re)aggregate. -#}
{% macro marts_changed_students_ctes(rescored=false) -%}
previous_marks as (
    select
        coalesce(max(previous._load_seq_mark), 0) as load_seq_mark,
        coalesce(max(previous._deleted_seq_mark), 0) as deleted_seq_mark
    from previous
),

-- countries with tombstones the state has not applied yet (and, with `rescored`, countries
-- whose rows were scored again: src/pisa_pulse/indices/rescore.py): recomputed from scratch
recomputed_countries as (
    select tombstones.cnt
    from tombstones
    where {{ marts_beyond_mark('tombstones', 'select previous_marks.deleted_seq_mark from previous_marks') }}
    {%- if rescored %}

    union

    select rescored.cnt
    from {{ ref('stg_calibration__rescored_countries') }} as rescored
    {%- endif %}
),

-- Two branches so that the new-rows branch can use an index on _load_seq.
changed_students as (
    select students.*
    from students
    where
        {{ marts_beyond_mark('students', 'select previous_marks.load_seq_mark from previous_marks') }}
        and students.cnt not in (select recomputed_countries.cnt from recomputed_countries)

    union all

    select students.*
    from students
    where students.cnt in (select recomputed_countries.cnt from recomputed_countries)
),
{%- endmacro %}


{#-
    The physical queue table calibration.rescored_countries, for the post-hook of
    country_index_state that empties it. A DELETE needs the table itself, not the staging
    view the model reads it through (stg_calibration__rescored_countries), and only staging
    calls source() (lineage: source -> staging -> marts). So the table is named from its
    source definition in the graph (_calibration__sources.yml stays the one place that names
    it), without a source() call that would add a source -> mart edge. At parse time the
    graph may not hold sources yet; the hook only runs at execution.
-#}
{% macro rescored_countries_queue() -%}
    {%- set node = graph.sources.get('source.' ~ project_name ~ '.calibration.rescored_countries') if execute else none -%}
    {%- if node is not none -%}
        {{ api.Relation.create(database=node.database, schema=node.schema, identifier=node.identifier) }}
    {%- elif execute -%}
        {{ exceptions.raise_compiler_error('source calibration.rescored_countries is not declared') }}
    {%- else -%}
        calibration.rescored_countries
    {%- endif -%}
{%- endmacro %}
