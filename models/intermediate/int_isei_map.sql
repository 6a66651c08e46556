{{ config(materialized='table', post_hook="{{ analyze_lookup_table() }}") }}

-- ISCO-08 code → ISEI as PISA 2018 used it: the observed 2018 map first, then codes
-- learned from rows carrying official BMMJ1/BFMJ2, fixed for the cycle (seed
-- learned_isei_map, written by `pulse params learn`). Every other code of the Ganzeboom
-- table gets a calibrated fallback (docs/indices.md, measured leave-one-code-out): the
-- 2018 value of a code in the same 3-digit group with the same Ganzeboom ISEI-08, else a
-- per-2-digit-group (≥ 3 codes), else per-major-group linear fit of the 2018 values on
-- Ganzeboom's, else Ganzeboom's own value. Built from seeds only, so a rebuild equals the
-- incremental state.

with

observed as (

    select * from {{ ref('isco08_to_isei_pisa2018_observed') }}

),

learned as (

    select * from {{ ref('learned_isei_map') }}

),

ganzeboom as (

    select * from {{ ref('isco08_to_isei08_ganzeboom') }}

),

exact_codes as (

    select
        isco08,
        isei_pisa2018 as isei,
        'observed' as isei_rule,
        n_students::bigint as n_rows

    from observed

    union all

    select
        learned.isco08,
        learned.isei,
        'learned' as isei_rule,
        learned.n_rows

    from learned
    where not exists (
        select 1 from observed
        where observed.isco08 = learned.isco08
    )

),

-- Exact codes with an occupational meaning (9701–9703 are set to 17 by rule) and their
-- Ganzeboom value: the pairs the fallbacks are calibrated on.
calibration_pairs as (

    select
        exact_codes.isco08,
        exact_codes.isei,
        exact_codes.n_rows,
        ganzeboom.isei08

    from exact_codes
    inner join ganzeboom on exact_codes.isco08 = ganzeboom.isco08
    where exact_codes.isco08 not in ('9701', '9702', '9703')

),

unseen as (

    select
        ganzeboom.isco08,
        ganzeboom.isei08

    from ganzeboom
    where not exists (
        select 1 from exact_codes
        where exact_codes.isco08 = ganzeboom.isco08
    )

),

same_isei08_sibling as (

    select distinct on (unseen.isco08)
        unseen.isco08,
        calibration_pairs.isei

    from unseen
    inner join calibration_pairs
        on
            left(unseen.isco08, 3) = left(calibration_pairs.isco08, 3)
            and unseen.isei08 = calibration_pairs.isei08
    order by unseen.isco08 asc, calibration_pairs.n_rows desc, calibration_pairs.isco08 asc

),

fit_2digit as (

    select
        left(isco08, 2) as isco_group,
        coalesce(regr_slope(isei, isei08), 0) as slope,
        coalesce(regr_intercept(isei, isei08), avg(isei)) as intercept

    from calibration_pairs
    group by left(isco08, 2)
    having count(*) >= 3

),

fit_1digit as (

    select
        left(isco08, 1) as isco_group,
        coalesce(regr_slope(isei, isei08), 0) as slope,
        coalesce(regr_intercept(isei, isei08), avg(isei)) as intercept

    from calibration_pairs
    group by left(isco08, 1)
    having count(*) >= 2

),

fallback_codes as (

    select
        unseen.isco08,
        round(
            coalesce(
                sibling.isei,
                f2.intercept + f2.slope * unseen.isei08,
                f1.intercept + f1.slope * unseen.isei08,
                unseen.isei08
            )::numeric,
            2
        ) as isei,
        case
            when sibling.isei is not null then 'sibling_same_isei08'
            when f2.slope is not null then 'fit_2digit'
            when f1.slope is not null then 'fit_1digit'
            else 'ganzeboom'
        end as isei_rule,
        0::bigint as n_rows

    from unseen
    left join same_isei08_sibling as sibling on unseen.isco08 = sibling.isco08
    left join fit_2digit as f2 on left(unseen.isco08, 2) = f2.isco_group
    left join fit_1digit as f1 on left(unseen.isco08, 1) = f1.isco_group

),

final as (

    select * from exact_codes

    union all

    select * from fallback_codes

)

select * from final
