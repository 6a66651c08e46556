{#- Refreshed by `pulse run`'s slow build job (src/pisa_pulse/cli/realtime.py names it): the shipped
    loop never refreshed it and the data-quality mart stayed empty. -#}
{{
    config(
        materialized='incremental',
        unique_key=['cnt', 'column_name', 'reason'],
        incremental_strategy='delete+insert',
    )
}}

with

null_reasons as (

    select reasons.* from {{ ref('stg_pisa__null_reasons') }} as reasons
    {%- if is_incremental() %}
        where {{ marts_beyond_mark('reasons', 'select coalesce(max(seen.max_load_seq), 0) from ' ~ this ~ ' as seen') }}
    {%- endif %}

),

batch as (

    select
        cnt,
        column_name,
        reason,
        count(*) as values_nulled,
        max(_load_seq) as max_load_seq

    from null_reasons
    group by cnt, column_name, reason

),

{%- if is_incremental() %}

-- Counts are additive: the batch's counts are added to the stored ones for the same key.
    previous as (

        select
            cnt,
            column_name,
            reason,
            values_nulled,
            max_load_seq

        from {{ this }}
        where (cnt, column_name, reason) in (
            select
                b.cnt,
                b.column_name,
                b.reason
            from batch as b
        )

    ),

{%- endif %}

combined as (

    select * from batch
    {%- if is_incremental() %}
        union all
        select * from previous
    {%- endif %}

),

final as (

    select
        cnt,
        column_name,
        reason,
        sum(values_nulled)::bigint as values_nulled,
        max(max_load_seq) as max_load_seq

    from combined
    group by cnt, column_name, reason

)

select * from final
