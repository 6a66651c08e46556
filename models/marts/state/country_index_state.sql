{#-
    Additive per-country state up to a high-water mark. Each run rewrites every country's row
    (a few dozen rows) so that all rows carry the same marks:
      _load_seq_mark    = max(_load_seq) of int_student_indices: the state covers every live
                          row with _load_seq <= it; the serving views add the rows beyond it.
      _deleted_seq_mark = max(_load_seq) of the tombstones applied.
    A country with tombstones newer than _deleted_seq_mark is recomputed from scratch, and so
    is a country whose rows were rescored after a calibration (queued in
    calibration.rescored_countries by src/pisa_pulse/indices/rescore.py; the pre-hook's lock keeps the queue
    still while the post-hook empties it); every other country adds its new rows. Rows
    tombstoned after int_student_indices' own post-hook ran are left out by the anti-join, so
    the state never counts a removed row.
    The queue is read through stg_calibration__rescored_countries; the post-hook that empties
    it must name the physical table (a DELETE cannot go through the staging view), which the
    macro rescored_countries_queue() takes from the source definition (macros/marts_aggregates.sql).
-#}
{{
    config(
        unique_key='cnt',
        pre_hook="{{ country_state_lock() }}",
        post_hook=[
            "delete from {{ this }} where submissions = 0",
            "delete from {{ rescored_countries_queue() }}",
            "{{ realtime_state_table_options() }}",
        ],
    )
}}
{%- set indices = marts_state_indices() %}

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
            0::bigint as submissions,
            {{ marts_index_zeros(indices) }},
            0::bigint as _load_seq_mark,
            0::bigint as _deleted_seq_mark
        where false
    {%- endif %}
),

{{ marts_changed_students_ctes(rescored=true) }}

live_students as (
    select changed_students.*
    from changed_students
    where not exists (
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
        count(*) as submissions,
        {{ marts_index_sums('live_students', indices) }}
    from live_students
    group by live_students.cnt
),

pieces as (
    select
        previous.cnt,
        previous.submissions,
        {{ marts_index_columns(indices, 'previous') }}
    from previous
    where previous.cnt not in (select recomputed_countries.cnt from recomputed_countries)

    union all

    select * from batch

    union all

    -- a zero row keeps an emptied country's key in the batch, so its old row is deleted
    select
        recomputed_countries.cnt,
        0 as submissions,
        {{ marts_index_zeros(indices) }}
    from recomputed_countries
),

totals as (
    select
        pieces.cnt,
        sum(pieces.submissions)::bigint as submissions,
        {{ marts_index_sum_of_pieces(indices, 'pieces') }}
    from pieces
    group by pieces.cnt
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
