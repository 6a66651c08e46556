"""The loop's incremental step of int_student_indices (src/pisa_pulse/realtime/advance.py).

Real rows, real dbt models. After a dbt tick, more rows arrive: some are advanced into
int_student_indices by the step, some not yet, some are deleted or re-loaded. At each stage
the table must hold exactly what the live view computes, and the serving views (state +
computed tail + live tail) must equal a direct recomputation over every live row.
"""

from __future__ import annotations

import psycopg2
import pytest

from pisa_pulse.loader.raw_fixture import pool_rows
from pisa_pulse.realtime.advance import StudentIndicesAdvancer, upsert_sql
from tests.support.marts_world import REALTIME, MartsWorld, direct_means

SERVED = [
    ("forage_learning_hours", "tmins", "tmins_mean"),
    ("forage_escs", "escs", "value"),
    ("forage_early_education_belonging", "durecec", "durecec_mean"),
    ("forage_early_education_belonging", "belong", "belong_mean"),
]


@pytest.fixture(scope="module")
def world(pg_server, tmp_path_factory):
    world = MartsWorld.create(pg_server, tmp_path_factory.mktemp("advance"), prefix="advance")
    rows = [dict(r, _id=i + 1) for i, r in enumerate(pool_rows())]
    world.rows = rows  # type: ignore[attr-defined]
    world.dbt_in_process("seed")
    world.dbt_in_process("run", "--exclude", "tag:slow")
    world.insert(rows[:200])
    world.dbt_in_process(*REALTIME)
    yield world
    world.close()


@pytest.fixture(scope="module")
def advancer(world):
    adv = StudentIndicesAdvancer(world.url)
    yield adv
    adv.close()


def _table_equals_live(world: MartsWorld) -> None:
    """int_student_indices holds every live row, each exactly as the view computes it."""
    columns = ", ".join(
        r["column_name"]
        for r in world.query(
            "select column_name from information_schema.columns where table_schema ="
            " 'intermediate' and table_name = 'int_student_indices_live' order by ordinal_position"
        )
    )
    table = world.texts("intermediate.int_student_indices", columns)
    live = world.texts("intermediate.int_student_indices_live", columns)
    assert table == live


def _served_equals_direct(world: MartsWorld) -> None:
    raw = world.query("select count(*) as n from raw.responses")[0]["n"]
    assert world.query("select count from marts.forage_submissions")[0]["count"] == raw
    for view, index, column in SERVED:
        direct = direct_means(world, index)
        served = {r["country"]: r for r in world.query(f"select * from marts.{view}")}
        assert set(served) == set(direct), view
        for country, row in served.items():
            assert row[column] == direct[country]["mean"], (view, country)


def test_upsert_sql_lists_every_column_once():
    sql = upsert_sql(["cnt", "id", "_load_seq", "tmins"])
    assert 'on conflict (cnt, id) do update set ("_load_seq", "tmins")' in sql
    assert '("cnt", "id", "_load_seq", "tmins")' in sql


def test_advance_brings_the_table_up_to_the_loader(world, advancer):
    world.insert(world.rows[200:320])
    assert advancer.advance() == 120
    _table_equals_live(world)
    assert advancer.advance() == 0  # nothing new: nothing upserted
    _served_equals_direct(world)


def test_served_tail_mixes_computed_and_live_rows(world, advancer):
    world.insert(world.rows[320:380])  # not advanced: the views compute these live
    mark = world.query("select max(_load_seq_mark) as m from marts.country_index_state")[0]["m"]
    computed = world.query(
        "select count(*) as n from intermediate.int_student_indices where _load_seq > %s", (mark,)
    )[0]["n"]
    assert computed == 120
    _served_equals_direct(world)


def test_deleted_and_reloaded_rows(world, advancer):
    assert advancer.advance() == 60
    # rows deleted from their source after they were advanced, one of them then re-loaded
    gone = world.delete("id in (210, 211, 330, 370)")
    assert gone == 4
    world.insert([r for r in world.rows if r["_id"] == 330])
    assert advancer.advance(deletions=True) == 1
    _table_equals_live(world)
    _served_equals_direct(world)


def test_skips_while_dbt_holds_the_lock(world, advancer):
    world.insert(world.rows[380:400])
    holder = psycopg2.connect(world.url)
    try:
        with holder.cursor() as cur:  # what the model's pre-hook does inside dbt's transaction
            cur.execute("select pg_advisory_xact_lock(hashtext('pulse.int_student_indices'))")
            assert advancer.advance() is None
            assert advancer.skipped_locked == 1
            _served_equals_direct(world)  # the 20 rows are computed live meanwhile
    finally:
        holder.rollback()
        holder.close()
    assert advancer.advance() == 20


def test_dbt_tick_after_advances_keeps_everything_equal(world, advancer):
    world.insert(world.rows[400:450])
    world.dbt_in_process(*REALTIME)  # dbt's own run of the model, after the loop's steps
    _table_equals_live(world)
    _served_equals_direct(world)
    state = world.query("select sum(submissions) as n from marts.country_index_state")[0]["n"]
    assert state == world.query("select count(*) as n from raw.responses")[0]["n"]
