{#-
    Additive submission counts per country and minute of the source `created_at`, up to a
    high-water mark; forage_submissions_over_time adds the rows beyond it. Only the keys a
    run touches are rewritten, so the marks differ from row to row: the state covers every
    live row with _load_seq <= max(_load_seq_mark) (a key's row is rewritten, with the new
    mark, whenever a row is added to it). Countries with tombstones newer than
    max(_deleted_seq_mark) are recomputed from scratch.
-#}
{{
    config(
        unique_key=['cnt', 'minute_start'],
        indexes=[
            {'columns': ['cnt', 'minute_start'], 'unique': true},
            {'columns': ['minute_start']},
        ],
        post_hook=[
            "delete from {{ this }} where submissions = 0",
            "{{ realtime_state_table_options() }}",
        ],
    )
}}

with

-- Read three times (the new mark, the two branches of changed_students): NOT MATERIALIZED
-- keeps each read on the table's indexes. Materialised, every dbt tick copied the whole
-- table (0.1 s at 200,000 rows, growing with it).
students as not materialized (
    select * from {{ ref('int_student_indices') }}
),

tombstones as (
    select * from {{ ref('stg_loader__responses_deleted') }}
),

new_marks as (
    select
        coalesce((select max(students._load_seq) from students), 0) as load_seq_mark,
        coalesce((select max(tombstones._load_seq) from tombstones), 0) as deleted_seq_mark
),

previous as (
    {%- if is_incremental() %}
        select * from {{ this }}
    {%- else %}
    -- first build: no previous state
        select
            null::text as cnt,
            null::timestamptz as minute_start,
            0::bigint as submissions,
            0::bigint as _load_seq_mark,
            0::bigint as _deleted_seq_mark
        where false
    {%- endif %}
),

{{ marts_changed_students_ctes() }}

live_students as (
    select changed_students.*
    from changed_students
    where
        changed_students.created_at is not null
        and not exists (
            select 1
            from tombstones
            where
                tombstones.cnt = changed_students.cnt
                and tombstones.id = changed_students.id
                and tombstones._load_seq > changed_students._load_seq
        )
),

batch as (
    select
        live_students.cnt,
        date_trunc('minute', live_students.created_at, 'UTC') as minute_start,
        count(*) as submissions
    from live_students
    group by live_students.cnt, date_trunc('minute', live_students.created_at, 'UTC')
),

pieces as (
    -- the old rows of the keys this batch touches (other keys stay as they are)
    select
        previous.cnt,
        previous.minute_start,
        previous.submissions
    from previous
    inner join batch
        on previous.cnt = batch.cnt and previous.minute_start = batch.minute_start
    where previous.cnt not in (select recomputed_countries.cnt from recomputed_countries)

    union all

    select * from batch

    union all

    -- zero rows for every old key of a recomputed country, so that emptied minutes go away
    select
        previous.cnt,
        previous.minute_start,
        0 as submissions
    from previous
    where previous.cnt in (select recomputed_countries.cnt from recomputed_countries)
),

totals as (
    select
        pieces.cnt,
        pieces.minute_start,
        sum(pieces.submissions)::bigint as submissions
    from pieces
    group by pieces.cnt, pieces.minute_start
),

final as (
    select
        totals.*,
        new_marks.load_seq_mark as _load_seq_mark,
        new_marks.deleted_seq_mark as _deleted_seq_mark
    from totals
    cross join new_marks
)

select * from final
