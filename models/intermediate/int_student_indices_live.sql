-- Every per-student OECD index, rebuilt from the cleaned answers (docs/indices.md), next to
-- the official value the row carries. A view, so `where _load_seq > x` reaches raw's index:
-- the serving views read the tail beyond the incremental state through it.

with

responses as (

    select * from {{ ref('stg_pisa__responses') }}

),

paredint_years as (

    select * from {{ ref('paredint_years') }}

),

pared_years as (

    select * from {{ ref('int_pared_years') }}

),

isei_map as (

    select * from {{ ref('int_isei_map') }}

),

belong_international as (

    select * from {{ ref('belong_wle_lookup_international') }}

),

belong_country as (

    select * from {{ ref('int_belong_country_patterns') }}

),

escs_coefficients as (

    select
        max(coef) filter (where term = 'intercept') as intercept,
        max(coef) filter (where term = 'HISEI') as coef_hisei,
        max(coef) filter (where term = 'PAREDINT') as coef_paredint,
        max(coef) filter (where term = 'HOMEPOS') as coef_homepos

    from {{ ref('escs_2018_coefficients') }}

),

escs_imputation as (

    select * from {{ ref('int_escs_imputation_params') }}

),

-- Per-row answers turned into item scores and codes; no lookups yet.
answers as (

    select
        s.*,
        s.st060q01na * s.st061q01na as tmins_product,
        coalesce(s.st059q01ta, 0) + coalesce(s.st059q02ta, 0) + coalesce(s.st059q03ta, 0) as subject_periods,
        {{ belong_pattern_key('s') }} as belong_pattern_key,
        {{ belong_n_valid('s') }} as belong_n_valid,
        -- 9704 (don't know) and 9705 (vague) carry no ISEI.
        case when s.ocod1 not in ('9704', '9705') then s.ocod1 end as isco_mother,
        case when s.ocod2 not in ('9704', '9705') then s.ocod2 end as isco_father,
        homepos.homepos_computed,
        homepos.homepos_provisional,
        homepos.homepos_param_source

    from responses as s
    {{ homepos_join('s') }}

),

base as (

    select
        a.*,
        -- TMINS: missing above 3000 minutes or when the total periods are fewer than the
        -- answered test-language, maths and science periods.
        case
            when a.tmins_product <= 3000 and a.st060q01na >= a.subject_periods then a.tmins_product
        end as tmins_computed,
        a.st059q01ta * a.st061q01na as lmins_computed,
        a.st059q02ta * a.st061q01na as mmins_computed,
        a.st059q03ta * a.st061q01na as smins_computed,
        -- DURECEC: ST126 code + 2 is the age at ISCED 1; ST125 code is the age at ISCED 0
        -- (7 = did not attend, 8 = does not remember: missing).
        case
            when a.st125q01na between 1 and 6 and a.st126q01ta + 2 - a.st125q01na >= 0
                then a.st126q01ta + 2 - a.st125q01na
        end as durecec_computed,
        {{ parent_isced('a', 'st005q01ta', 'st006q01ta', 'st006q02ta', 'st006q03ta', 'st006q04ta') }} as misced_computed,
        {{ parent_isced('a', 'st007q01ta', 'st008q01ta', 'st008q02ta', 'st008q03ta', 'st008q04ta') }} as fisced_computed,
        {{ parent_isced('a', 'st005q01ta', 'st006q01ta', 'st006q02ta', 'st006q03ta', 'st006q04ta', restricted=true) }} as misced_d_computed,
        {{ parent_isced('a', 'st007q01ta', 'st008q01ta', 'st008q02ta', 'st008q03ta', 'st008q04ta', restricted=true) }} as fisced_d_computed,
        -- ISEI: the map (every ISCO-08 code of the ISEI-08 table PISA 2018 used, plus 9701–9703
        -- and learned codes), then the 3-digit, then the 2-digit group for codes outside it.
        coalesce(m1.isei, m1_3.isei, m1_2.isei) as bmmj1_computed,
        case
            when m1.isei is not null then m1.isei_rule
            when m1_3.isei is not null then 'group_3digit'
            when m1_2.isei is not null then 'group_2digit'
        end as bmmj1_rule,
        coalesce(m2.isei, m2_3.isei, m2_2.isei) as bfmj2_computed,
        case
            when m2.isei is not null then m2.isei_rule
            when m2_3.isei is not null then 'group_3digit'
            when m2_2.isei is not null then 'group_2digit'
        end as bfmj2_rule,
        -- BELONG: the country's own learned pattern value first, else the international WLE.
        case when a.belong_n_valid >= 3 then coalesce(bc.belong_value, bi.belong_wle) end as belong_computed,
        case
            when a.belong_n_valid < 3 then null
            when bc.belong_value is not null then 'country_learned'
            when bi.belong_wle is not null then 'international'
        end as belong_rule

    from answers as a
    left join isei_map as m1 on a.isco_mother = m1.isco08
    left join isei_map as m1_3 on left(a.isco_mother, 3) || '0' = m1_3.isco08
    left join isei_map as m1_2 on left(a.isco_mother, 2) || '00' = m1_2.isco08
    left join isei_map as m2 on a.isco_father = m2.isco08
    left join isei_map as m2_3 on left(a.isco_father, 3) || '0' = m2_3.isco08
    left join isei_map as m2_2 on left(a.isco_father, 2) || '00' = m2_2.isco08
    left join belong_country as bc
        on a.cnt = bc.cnt and a.belong_pattern_key = bc.pattern_key
    left join belong_international as bi on a.belong_pattern_key = bi.pattern_key

),

derived as (

    select
        b.*,
        greatest(b.misced_computed, b.fisced_computed) as hisced_computed,
        greatest(b.misced_d_computed, b.fisced_d_computed) as hisced_d_computed,
        greatest(b.bmmj1_computed, b.bfmj2_computed) as hisei_computed

    from base as b

),

years as (

    select
        d.*,
        py.paredint_years as paredint_computed,
        pc.pared_years as pared_computed,
        pc.pared_rule

    from derived as d
    left join paredint_years as py on d.hisced_d_computed = py.hisced_d
    left join pared_years as pc on d.cnt = pc.cnt and d.hisced_computed = pc.hisced

),

-- Official values as the row carries them, under the contract's names.
with_official as (

    select
        {%- for x in student_index_names() %}
            y.{{ x }} as {{ x }}_official,
        {%- endfor %}
        y.*

    from years as y

),

-- ESCS from the components as served (index_served); with exactly one
-- missing it is imputed from the other two by the country's regression.
escs_inputs as (

    select
        w.*,
        {{ index_served('hisei', 'w') }} as escs_hisei,
        {{ index_served('paredint', 'w') }} as escs_paredint,
        {{ index_served('homepos', 'w') }} as escs_homepos

    from with_official as w

),

escs as (

    select
        e.*,
        case
            when e.escs_hisei is null then 'hisei'
            when e.escs_paredint is null then 'paredint'
            when e.escs_homepos is null then 'homepos'
        end as escs_imputed_component,
        (e.escs_hisei is null)::integer
        + (e.escs_paredint is null)::integer
        + (e.escs_homepos is null)::integer as escs_missing_components

    from escs_inputs as e

),

escs_imputed as (

    select
        e.*,
        case
            when e.escs_missing_components = 0
                then round(
                    (
                        c.intercept + c.coef_hisei * e.escs_hisei + c.coef_paredint * e.escs_paredint
                        + c.coef_homepos * e.escs_homepos
                    )::numeric,
                    4
                )
            when e.escs_missing_components = 1
                then round(
                    (
                        c.intercept
                        + c.coef_hisei * coalesce(e.escs_hisei, imp.imputed)
                        + c.coef_paredint * coalesce(e.escs_paredint, imp.imputed)
                        + c.coef_homepos * coalesce(e.escs_homepos, imp.imputed)
                    )::numeric,
                    4
                )
        end as escs_computed

    from escs as e
    cross join escs_coefficients as c
    left join lateral (
        select
            p.intercept
            + p.coef_hisei * coalesce(e.escs_hisei, 0)
            + p.coef_paredint * coalesce(e.escs_paredint, 0)
            + p.coef_homepos * coalesce(e.escs_homepos, 0) as imputed

        from escs_imputation as p
        where
            e.escs_missing_components = 1
            and p.component = e.escs_imputed_component
            and p.cnt in (e.cnt, '*')
        -- the country's own regression when it has one, else the pooled one
        order by p.cnt = '*'
        limit 1
    ) as imp on true

),

final as (

    select
        i.cnt,
        i.id,
        i.created_at,
        i._loaded_at,
        i._load_seq,
        i.w_fstuwt,
        {%- for x in student_index_names() %}
            {{ index_columns(x, 'i') }},
        {%- endfor %}
        i.homepos_provisional,
        i.homepos_param_source,
        i.bmmj1_rule,
        i.bfmj2_rule,
        i.pared_rule,
        i.belong_rule,
        case when i.escs_missing_components = 1 then i.escs_imputed_component end as escs_imputed_component

    from escs_imputed as i

)

select * from final
