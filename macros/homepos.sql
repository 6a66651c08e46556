{#-
    HOMEPOS (home possessions) scored per row inside the warehouse (docs/homepos.md).

    - homepos_items(): the 25 items in pattern order, from the project var `homepos_items`
      (dbt_project.yml), the one list (src/pisa_pulse/indices/homepos_model.py reads it too).
    - homepos_pattern(alias): a 25-character response pattern, one score digit per item,
      '.' when the item is missing.
    - homepos_join(alias): the lateral join giving the live indices view its HOMEPOS columns.
    - homepos_create_objects(): on-run-start; creates the PL/pgSQL functions, the WLE cache
      and the calibration tables (idempotent).
    - homepos_tables_ddl(): the one copy of the calibration tables' DDL;
      `dbt run-operation homepos_create_tables` runs it for Python that needs the tables
      before any dbt run (src/pisa_pulse/indices/calibration_tables.py).
-#}

{#- Each item: {item, kind (yes_no / national / count / books), n_cat}. -#}
{% macro homepos_items() %}
    {{ return(var('homepos_items')) }}
{% endmacro %}

{#- One item's score as a single character ('.' = missing) from the staged column. -#}
{% macro homepos_item_score(alias, item) -%}
    {%- set col = alias ~ '.' ~ item.item | lower -%}
    {%- if item.kind == 'yes_no' -%}
        case {{ col }} when 1 then '1' when 2 then '0' else '.' end
    {%- elif item.kind == 'national' -%}
        {#- '0' + ISO numeric country + answer: last digit 1 = yes, 2 = no; 99999xx = missing. -#}
        case
            when {{ col }}::text like '99999%' then '.'
            when right({{ col }}::text, 1) = '1' then '1'
            when right({{ col }}::text, 1) = '2' then '0'
            else '.'
        end
    {%- else -%}
        case when {{ col }} between 1 and {{ item.n_cat }} then ({{ col }}::integer - 1)::text else '.' end
    {%- endif -%}
{%- endmacro %}

{% macro homepos_pattern(alias) -%}
    concat(
        {%- for item in homepos_items() %}
        {{ homepos_item_score(alias, item) }}{{ "," if not loop.last }}
        {%- endfor %}
    )
{%- endmacro %}

{#-
    The row's HOMEPOS from its effective parameter set (the country's own row of
    int_homepos_params, else the DEFAULT row), as a LEFT JOIN LATERAL named `alias_out`
    with columns homepos_computed, homepos_provisional, homepos_param_source. A lateral
    subquery with LIMIT is evaluated once per row; the scalar subqueries this replaced were
    copied into every expression that used them when the planner flattened the CTEs, so each
    row was scored three times (measured: 0.40 of 0.7 ms a row).
-#}
{% macro homepos_join(alias, alias_out='homepos') -%}
    left join lateral (
        select
            round(reference.homepos_score(
                hp.param_version, hp.item_a, hp.item_c, hp.item_ncat, {{ homepos_pattern(alias) }}
            )::numeric, 6) as homepos_computed,
            hp.provisional as homepos_provisional,
            hp.param_source as homepos_param_source
        from {{ ref('int_homepos_params') }} as hp
        where hp.cnt in ({{ alias }}.cnt, 'DEFAULT')
        order by hp.cnt = 'DEFAULT'
        limit 1
    ) as {{ alias_out }} on true
{%- endmacro %}


{#- ---------------------------------------------------------------------------------------- -#}
{#- Warehouse objects, created by on-run-start (before any model runs).                      -#}
{#- ---------------------------------------------------------------------------------------- -#}

{#-
    Warm's WLE by Newton for one pattern (docs/indices.md): a = discriminations, c = the
    cumulative thresholds (item × category, c[i][1] = 0), ncat = categories per item.
-#}
{% macro _homepos_wle_body() %}
declare
    n integer := array_length(a, 1);
    x integer[] := array_fill(-1, array[n]);
    p double precision[] := array_fill(0::double precision, array[6]);
    n_valid integer := 0;
    theta double precision := 0;
    ch text;
    ai double precision;
    mx double precision;
    z double precision;
    pr double precision;
    e double precision;
    d double precision;
    v double precision;
    m3 double precision;
    m4 double precision;
    s double precision;
    info double precision;
    j double precision;
    kk double precision;
    f double precision;
    fp double precision;
    step double precision;
begin
    for i in 1..n loop
        ch := substr(pattern, i, 1);
        if ch <> '.' and ch <> '' then
            x[i] := ch::integer;
            n_valid := n_valid + 1;
        end if;
    end loop;
    if n_valid < 3 then
        return null;
    end if;
    for iteration in 1..100 loop
        s := 0; info := 0; j := 0; kk := 0;
        for i in 1..n loop
            continue when x[i] < 0;
            ai := a[i];
            if ncat[i] = 2 then
                -- Binary items (16 of 25) in closed form: P(1) = logistic(a(θ − c1)).
                z := ai * (theta - c[i][2]);
                if z > 700 then pr := 1; elsif z < -700 then pr := 0; else pr := 1 / (1 + exp(-z)); end if;
                v := pr * (1 - pr);
                s := s + ai * (x[i] - pr);
                info := info + ai * ai * v;
                j := j + ai * ai * ai * v * (1 - 2 * pr);
                kk := kk + ai * ai * ai * ai * (v * (1 - 3 * v) - 3 * v * v);
                continue;
            end if;
            mx := -1e308;
            for k in 1..ncat[i] loop
                p[k] := ai * ((k - 1) * theta - c[i][k]);
                if p[k] > mx then mx := p[k]; end if;
            end loop;
            z := 0;
            for k in 1..ncat[i] loop
                -- exp() raises on underflow in Postgres: treat tiny terms as 0.
                if p[k] - mx < -700 then p[k] := 0; else p[k] := exp(p[k] - mx); end if;
                z := z + p[k];
            end loop;
            e := 0;
            for k in 1..ncat[i] loop
                p[k] := p[k] / z;
                e := e + (k - 1) * p[k];
            end loop;
            v := 0; m3 := 0; m4 := 0;
            for k in 1..ncat[i] loop
                d := (k - 1) - e;
                v := v + p[k] * d * d;
                m3 := m3 + p[k] * d * d * d;
                m4 := m4 + p[k] * d * d * d * d;
            end loop;
            s := s + ai * (x[i] - e);
            info := info + ai * ai * v;
            j := j + ai * ai * ai * m3;
            kk := kk + ai * ai * ai * ai * (m4 - 3 * v * v);
        end loop;
        f := s + j / (2 * info);
        fp := -info + (kk * info - j * j) / (2 * info * info);
        if fp < 0 then step := -f / fp; else step := sign(f); end if;
        step := least(1.0, greatest(-1.0, step));
        theta := theta + step;
        exit when abs(step) < 1e-8;
    end loop;
    return theta;
end
{% endmacro %}

{#-
    The cached scorer: the WLE depends only on (parameter set, pattern), and simulated and
    real rows repeat patterns heavily, so look the pattern up first and compute on a miss.
    STABLE (not VOLATILE) so that the views calling it stay inlinable and `_load_seq`
    predicates still reach raw's index; the write goes through a VOLATILE helper.
-#}
{% macro _homepos_score_body() %}
declare
    t double precision;
begin
    if pattern is null or param_version is null then
        return null;
    end if;
    select w.theta into t
    from reference.homepos_wle_cache as w
    where w.param_version = homepos_score.param_version and w.pattern = homepos_score.pattern
    limit 1;
    if found then
        return t;
    end if;
    t := reference.homepos_wle(a, c, ncat, pattern);
    perform reference.homepos_cache_put(param_version, pattern, t);
    return t;
end
{% endmacro %}

{#- A cache write must never fail a read: skip in read-only transactions, swallow errors. -#}
{% macro _homepos_cache_put_body() %}
begin
    if current_setting('transaction_read_only') = 'on' then
        return;
    end if;
    insert into reference.homepos_wle_cache (param_version, pattern, theta)
    values (param_version, pattern, theta);
exception when others then
    return;
end
{% endmacro %}

{#- (name, signature, returns, attributes, body) of every function, in creation order. -#}
{% macro _homepos_functions() %}
    {{ return([
        {
            'name': 'homepos_wle',
            'args': 'a double precision[], c double precision[], ncat integer[], pattern text',
            'returns': 'double precision',
            'attributes': 'immutable parallel safe',
            'body': _homepos_wle_body(),
        },
        {
            'name': 'homepos_cache_put',
            'args': 'param_version text, pattern text, theta double precision',
            'returns': 'void',
            'attributes': 'volatile',
            'body': _homepos_cache_put_body(),
        },
        {
            'name': 'homepos_score',
            'args': 'param_version text, a double precision[], c double precision[], ncat integer[], pattern text',
            'returns': 'double precision',
            'attributes': 'stable',
            'body': _homepos_score_body(),
        },
    ]) }}
{% endmacro %}

{% macro homepos_create_objects() %}
    {%- set functions = _homepos_functions() -%}
    {#- Replace a function only when its body changed: this hook runs on every dbt tick, and
        concurrent CREATE OR REPLACE of one function can fail ("tuple concurrently updated"). -#}
    {%- set current = {} -%}
    {%- if execute -%}
        {%- set found = run_query(
            "select p.proname, md5(p.prosrc) from pg_proc as p join pg_namespace as n"
            ~ " on n.oid = p.pronamespace where n.nspname = 'reference' and p.proname like 'homepos%'"
        ) -%}
        {%- for row in found.rows -%}
            {%- do current.update({row[0]: row[1]}) -%}
        {%- endfor -%}
        {#- Skip the table DDL when the tables exist: CREATE INDEX IF NOT EXISTS would still
            lock the cache table against the writers on every tick. -#}
        {%- set tables = run_query(
            "select to_regclass('calibration.homepos_params') is not null"
            ~ " and to_regclass('reference.homepos_wle_cache_key_idx') is not null"
            ~ " and to_regclass('calibration.rescored_countries') is not null"
            ~ " and to_regclass('calibration.rescore_pending') is not null"
        ) -%}
        {%- do current.update({'tables': tables.rows[0][0]}) -%}
    {%- endif %}
    {%- if not current.get('tables') %}
{{ homepos_tables_ddl() }}
    {%- endif %}
    {%- for fn in functions %}
        {%- if current.get(fn.name) != local_md5(fn.body) %}
create or replace function reference.{{ fn.name }}({{ fn.args }})
returns {{ fn.returns }} language plpgsql {{ fn.attributes }}
as $homepos${{ fn.body }}$homepos$;
        {%- endif %}
    {%- endfor %}
{% endmacro %}


{#-
    The calibration tables (docs/contracts.md), the WLE cache and their schemas: the only copy
    of this DDL. homepos_create_objects() runs it on-run-start; homepos_create_tables() is the
    same for `dbt run-operation`, before any dbt run.
-#}
{% macro homepos_tables_ddl() %}
create schema if not exists reference;
create schema if not exists calibration;
-- Parameter sets written by `pulse calibrate homepos`.
create table if not exists calibration.homepos_params (
    cnt text not null,
    version integer not null,
    method text not null,
    item text not null,
    a double precision not null,
    b1 double precision,
    b2 double precision,
    b3 double precision,
    b4 double precision,
    b5 double precision,
    n_rows integer,
    fitted_at timestamptz not null default now(),
    note text,
    primary key (cnt, version, item)
);
-- Countries whose rows were rescored; country_index_state recomputes them and empties the table.
create table if not exists calibration.rescored_countries (
    cnt text not null,
    rescored_at timestamptz not null default now()
);
-- Countries with a calibration written but their rows not yet rescored: inserted in the
-- calibration's own transaction, deleted in the rescore's, so a calibrate job killed between
-- the two leaves the marker and the next job finishes the work (indices/calibrate.py).
create table if not exists calibration.rescore_pending (
    cnt text primary key,
    since timestamptz not null default now()
);
-- Memo of WLE results; unlogged (a cache), no unique key so concurrent writers never wait.
create unlogged table if not exists reference.homepos_wle_cache (
    param_version text not null,
    pattern text not null,
    theta double precision,
    cached_at timestamptz not null default now()
);
create index if not exists homepos_wle_cache_key_idx
    on reference.homepos_wle_cache (param_version, pattern);
{% endmacro %}

{#- `dbt run-operation homepos_create_tables`: run-operation runs no returned SQL, so run the
    DDL here, and commit explicitly rather than rely on how run-operation ends its connection. -#}
{% macro homepos_create_tables() %}
    {%- do run_query(homepos_tables_ddl()) -%}
    {%- do run_query('commit') -%}
{% endmacro %}
