{{ config(materialized='table', post_hook="{{ analyze_lookup_table() }}") }}

-- ISCO-08 code → ISEI as PISA 2018 used it: the observed 2018 map first (it also carries the
-- pseudo-codes 9701–9703 → 17), then codes learned from rows carrying official BMMJ1/BFMJ2
-- (seed learned_isei_map, written by `pulse params learn`), then every other code of
-- Ganzeboom's two-decimal ISEI-08 table, which is the table PISA 2018 used: each of the 346
-- occupational codes seen in the 2018 records carries exactly its value (docs/indices.md,
-- tests/indices/test_indices_isei_table.py). Built from seeds only, so a rebuild equals the
-- incremental state.

with

observed as (

    select * from {{ ref('isco08_to_isei_pisa2018_observed') }}

),

learned as (

    select * from {{ ref('learned_isei_map') }}

),

isei08 as (

    select * from {{ ref('isco08_to_isei08_ganzeboom') }}

),

from_observed as (

    select
        isco08,
        isei_pisa2018 as isei,
        'observed' as isei_rule,
        n_students::bigint as n_rows

    from observed

),

from_learned as (

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

from_table as (

    select
        isei08.isco08,
        isei08.isei08 as isei,
        'isei08' as isei_rule,
        0::bigint as n_rows

    from isei08
    where
        not exists (
            select 1 from observed
            where observed.isco08 = isei08.isco08
        )
        and not exists (
            select 1 from learned
            where learned.isco08 = isei08.isco08
        )

),

final as (

    select * from from_observed

    union all

    select * from from_learned

    union all

    select * from from_table

)

select * from final
