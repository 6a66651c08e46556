with

minute_state as (
    select * from {{ ref('submission_minute_state') }}
),

-- counts and created_at need no answers
responses as (
    select * from {{ ref('stg_pisa__submissions') }}
),

window_start as (
    -- the oldest hour shown; minutes are a subset of it
    select date_trunc('hour', now(), 'UTC') - interval '23 hours' as hour_start
),

tail as (
    select
        date_trunc('minute', responses.created_at, 'UTC') as minute_start,
        count(*) as submissions
    from responses
    where
        {{ marts_beyond_mark(
            'responses', 'select coalesce(max(minute_state._load_seq_mark), 0) from minute_state'
        ) }}
        and responses.created_at >= (select window_start.hour_start from window_start)
    group by date_trunc('minute', responses.created_at, 'UTC')
),

recent_minutes as (
    select
        minute_state.minute_start,
        minute_state.submissions
    from minute_state
    where minute_state.minute_start >= (select window_start.hour_start from window_start)

    union all

    select
        tail.minute_start,
        tail.submissions
    from tail
),

minute_totals as (
    select
        recent_minutes.minute_start,
        sum(recent_minutes.submissions) as submissions
    from recent_minutes
    group by recent_minutes.minute_start
),

hour_totals as (
    select
        date_trunc('hour', minute_totals.minute_start, 'UTC') as hour_start,
        sum(minute_totals.submissions) as submissions
    from minute_totals
    group by date_trunc('hour', minute_totals.minute_start, 'UTC')
),

hour_buckets as (
    select
        'hour' as granularity,
        hours.bucket_start,
        to_char(hours.bucket_start at time zone 'UTC', 'HH24:MI') as label,  -- noqa: RF04
        coalesce(hour_totals.submissions, 0)::bigint as submissions
    from
        generate_series(
            date_trunc('hour', now(), 'UTC') - interval '23 hours',
            date_trunc('hour', now(), 'UTC'),
            interval '1 hour'
        ) as hours (bucket_start)
    left join hour_totals on hours.bucket_start = hour_totals.hour_start
),

minute_buckets as (
    select
        'minute' as granularity,
        minutes.bucket_start,
        to_char(minutes.bucket_start at time zone 'UTC', 'HH24:MI') as label,  -- noqa: RF04
        coalesce(minute_totals.submissions, 0)::bigint as submissions
    from
        generate_series(
            date_trunc('minute', now(), 'UTC') - interval '59 minutes',
            date_trunc('minute', now(), 'UTC'),
            interval '1 minute'
        ) as minutes (bucket_start)
    left join minute_totals on minutes.bucket_start = minute_totals.minute_start
),

bucket_counts as (
    select * from hour_buckets
    union all
    select * from minute_buckets
),

final as (
    select
        bucket_counts.granularity,
        bucket_counts.bucket_start,
        bucket_counts.label,
        bucket_counts.submissions
    from bucket_counts
    order by bucket_counts.granularity, bucket_counts.bucket_start
)

select * from final
