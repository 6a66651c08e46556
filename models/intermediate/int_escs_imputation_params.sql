{{ config(materialized='table', post_hook="{{ analyze_lookup_table() }}") }}

-- ESCS imputation regressions, fixed for the cycle (seed learned_escs_imputation_params,
-- learned by `pulse params learn`, see int_learned_escs_imputation_params). Fixed rather
-- than learned from the rows as they stream in, so that every row is scored with the same
-- parameters a from-scratch rebuild uses.

with

learned as (

    select * from {{ ref('learned_escs_imputation_params') }}

),

final as (

    select
        cnt,
        component,
        coef_hisei,
        coef_paredint,
        coef_homepos,
        n_rows,
        intercept

    from learned

)

select * from final
