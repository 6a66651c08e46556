{{ config(materialized='view', tags=['learning']) }}

-- What the warehouse's rows teach about ESCS imputation (not read by the indices:
-- `pulse params learn` writes it to the seed learned_escs_imputation_params).
-- Deterministic regression imputation for ESCS when exactly one component is missing:
-- each component (HISEI, PAREDINT, HOMEPOS) regressed by OLS on the other two, over rows
-- carrying all three official components, per country (cnt = '*' pools every country,
-- used when a country has fewer than 30 complete rows). A conditional mean keeps country
-- means unbiased; the OECD's random residual cannot be reproduced row by row.
{%- set components = ['hisei', 'paredint', 'homepos'] %}

with

responses as (

    select * from {{ ref('stg_pisa__responses') }}

),

complete_rows as (

    select
        cnt,
        hisei,
        paredint,
        homepos

    from responses
    where hisei is not null and paredint is not null and homepos is not null

),

grouped as (

    select
        cnt,
        hisei,
        paredint,
        homepos
    from complete_rows
    union all
    select
        '*' as cnt,
        hisei,
        paredint,
        homepos
    from complete_rows

),

{%- for target in components %}
    {%- set x1, x2 = components | reject('equalto', target) | list %}

    moments_{{ target }} as (

        select
            cnt,
            '{{ target }}' as component,
            '{{ x1 }}' as x1,
            '{{ x2 }}' as x2,
            count(*) as n_rows,
            avg({{ target }}) as mean_y,
            avg({{ x1 }}) as mean_1,
            avg({{ x2 }}) as mean_2,
            var_samp({{ x1 }}) as var_1,
            var_samp({{ x2 }}) as var_2,
            covar_samp({{ x1 }}, {{ x2 }}) as cov_12,
            covar_samp({{ x1 }}, {{ target }}) as cov_1y,
            covar_samp({{ x2 }}, {{ target }}) as cov_2y

        from grouped
        group by cnt

    ),
{%- endfor %}

moments as (

    {%- for target in components %}
        select * from moments_{{ target }}{{ " union all" if not loop.last }}
    {%- endfor %}

),

solved as (

    select
        cnt,
        component,
        x1,
        x2,
        n_rows,
        mean_y,
        mean_1,
        mean_2,
        (var_2 * cov_1y - cov_12 * cov_2y) / nullif(var_1 * var_2 - cov_12 * cov_12, 0) as coef_1,
        (var_1 * cov_2y - cov_12 * cov_1y) / nullif(var_1 * var_2 - cov_12 * cov_12, 0) as coef_2

    from moments
    where n_rows >= 30 or cnt = '*'

),

final as (

    select
        cnt,
        component,
        {%- for c in components %}
            case when x1 = '{{ c }}' then coef_1 when x2 = '{{ c }}' then coef_2 else 0 end as coef_{{ c }},
        {%- endfor %}
        n_rows,
        mean_y - coef_1 * mean_1 - coef_2 * mean_2 as intercept

    from solved
    where coef_1 is not null and coef_2 is not null

)

select * from final
