with

country_state as (
    select * from {{ ref('country_index_state') }}
),

-- counts and created_at need no answers
responses as (
    select * from {{ ref('stg_pisa__submissions') }}
),

state_count as (
    select coalesce(sum(country_state.submissions), 0) as submissions
    from country_state
),

tail_count as (
    select count(*) as submissions
    from responses
    where {{ marts_beyond_mark('responses', 'select coalesce(max(country_state._load_seq_mark), 0) from country_state') }}
),

final as (
    select (state_count.submissions + tail_count.submissions)::bigint as count
    from state_count
    cross join tail_count
)

select * from final
