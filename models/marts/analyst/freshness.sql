{#-
    How old the warehouse's copy of each source is, in milliseconds, now. `lag_ms` counts from
    the loader's last successful poll: every submission committed in the source before that
    poll is in raw.responses, and the serving views read raw through the tail, so this is also
    the age of what Forage is served (publisher aside). The `overall` row is the worst source.
-#}
{{ config(tags=['serving']) }}

with

loader_sources as (
    select * from {{ ref('stg_loader__sources') }}
),

country_state as (
    select * from {{ ref('country_index_state') }}
),

-- counts and created_at need no answers
responses as (
    select * from {{ ref('stg_pisa__submissions') }}
),

per_source as (
    select
        loader_sources.cnt as source,  -- noqa: RF04
        (extract(epoch from now() - loader_sources.last_polled_at) * 1000)::bigint as lag_ms,
        loader_sources.status,
        loader_sources.lag_ms as loader_lag_ms,
        loader_sources.newest_created_at,
        loader_sources.last_polled_at,
        loader_sources.rows_loaded,
        loader_sources.rows_per_s,
        loader_sources.last_error,
        null::bigint as state_mark,
        null::bigint as tail_rows
    from loader_sources
),

state_mark as (
    select coalesce(max(country_state._load_seq_mark), 0) as mark
    from country_state
),

tail_rows as (
    select count(*) as n
    from responses
    where {{ marts_beyond_mark('responses', 'select state_mark.mark from state_mark') }}
),

overall as (
    select
        'overall' as source,  -- noqa: RF04
        max(per_source.lag_ms) as lag_ms,
        case
            when count(*) = 0 then 'no sources'
            when bool_and(per_source.status = 'ok') then 'ok'
            when bool_or(per_source.status = 'ok') then 'degraded'
            else 'down'
        end as status,
        max(per_source.loader_lag_ms) as loader_lag_ms,
        max(per_source.newest_created_at) as newest_created_at,
        min(per_source.last_polled_at) as last_polled_at,
        sum(per_source.rows_loaded)::bigint as rows_loaded,
        sum(per_source.rows_per_s) as rows_per_s,
        null as last_error,
        (select state_mark.mark from state_mark) as state_mark,
        (select tail_rows.n from tail_rows) as tail_rows
    from per_source
),

final as (
    select * from per_source
    union all
    select * from overall
)

select * from final
