"""Incremental equals full refresh, digit for digit; the serving views equal a recomputation.

The real rows arrive in small batches with increasing `_load_seq`; the real-time selection
(`dbt run --select tag:realtime`) runs between batches. Midway a few rows are deleted and
then a whole source (ITA) is emptied, with tombstones written exactly as the loader writes
them; ITA's rows later come back. Copies of real rows under a country of no pool ('ALB'),
without their country-dependent official indices as the simulator sends them, arrive in
two batches: their ESCS needs the learned imputation regressions. The database is then
copied and the copy rebuilt from nothing (`dbt seed`, `dbt run --full-refresh`, every
model): every mart must read the same, as Postgres' own text of each row. Finally
rows are added *without* running dbt: the serving views (state + tail) must still equal a
direct recomputation over every row.
"""

from __future__ import annotations

import datetime as dt
import random
from decimal import ROUND_HALF_UP, Decimal

import pytest

from pisa_pulse.loader.raw_fixture import pool_rows
from pisa_pulse.sim.pool import COUNTRY_DEPENDENT_INDICES
from tests.support.marts_world import REALTIME, MartsWorld, direct_means

TAIL_OFFSET = 500_000  # ids of the rows added after the last dbt run
ALB_OFFSET = 300_000  # ids of the 'ALB' copies

# Marts compared between the incremental and the full-refresh build. The minute state's
# marks record when each key was last rewritten, so they are bookkeeping, not data.
COMPARED = {
    "marts.country_index_state": "*",
    "marts.submission_minute_state": "cnt, minute_start, submissions",
    "marts.forage_submissions": "*",
    "marts.forage_learning_hours": "*",
    "marts.forage_escs": "*",
    "marts.forage_early_education_belonging": "*",
    "marts.country_profile": "*",
    "marts.reconciliation": "*",
    "marts.freshness": "source, status, rows_loaded, state_mark, tail_rows",
}


def _batches(rows: list[dict], sizes: list[int]) -> list[list[dict]]:
    out, start = [], 0
    for size in sizes:
        out.append(rows[start : start + size])
        start += size
    out.append(rows[start:])
    return out


@pytest.fixture(scope="module")
def worlds(pg_server, tmp_path_factory):
    world = MartsWorld.create(pg_server, tmp_path_factory.mktemp("marts_incremental"))
    rows = [dict(r, _id=i + 1) for i, r in enumerate(pool_rows())]
    random.Random(2018).shuffle(rows)
    italy = [r for r in rows if r["CNT"] == "ITA"]
    others = [r for r in rows if r["CNT"] != "ITA"]
    albania = [dict(r, CNT="ALB", _id=ALB_OFFSET + r["_id"]) for r in rows[0::4]]
    world.execute(
        "insert into raw.loader_sources (cnt, status, rows_loaded, last_polled_at)"
        " values ('FRA', 'ok', 1, now()), ('ITA', 'ok', 2, now()), ('MEX', 'down', 3, now())"
    )

    world.dbt_in_process("seed")
    world.dbt_in_process("run")  # everything, on an empty raw layer
    first, second, third, fourth, rest = _batches(others, [120, 90, 60, 75])
    steps = [
        lambda: (
            world.insert(first + italy[:150]),
            world.insert(albania[:150], drop_official=COUNTRY_DEPENDENT_INDICES),
        ),
        lambda: world.insert(second + italy[150:300]),
        lambda: (world.delete("cnt = 'FRA' and id % 7 = 0"), world.insert(third)),
        lambda: world.delete("cnt = 'ITA'"),  # the source is emptied
        lambda: None,  # a tick with nothing new
        lambda: world.insert(fourth + italy[:200]),  # ITA comes back, same ids
        lambda: (
            world.insert(rest),
            world.insert(albania[150:], drop_official=COUNTRY_DEPENDENT_INDICES),
        ),
    ]
    ticks = []
    for step in steps:
        step()
        world.dbt_in_process(*REALTIME)
        ticks.append(world.query("select count(*) as n from marts.country_index_state")[0]["n"])
    world.dbt_in_process("run", "--select", "reconciliation")
    world.close()

    full = world.copy_to("marts_full")
    full.dbt("seed", "--full-refresh")
    full.dbt("run", "--full-refresh")
    world.ticks = ticks  # type: ignore[attr-defined]
    return world, full


def _over_time_pair(a: MartsWorld, b: MartsWorld):
    """The over-time view of both databases, read within the same minute."""
    for _ in range(3):
        before = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
        first = a.texts("marts.forage_submissions_over_time")
        second = b.texts("marts.forage_submissions_over_time")
        if dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) == before:
            return first, second
    raise AssertionError("could not read both views within one minute")


def test_emptied_source_leaves_the_state(worlds):
    world, _ = worlds
    # ITA is in the state after the first ticks, gone after it was emptied, back afterwards
    # (FRA, ITA, MEX and ALB).
    assert world.ticks[:3] == [4, 4, 4]
    assert world.ticks[3:5] == [3, 3]
    assert world.ticks[5:] == [4, 4]


@pytest.mark.parametrize("relation", list(COMPARED))
def test_incremental_equals_full_refresh(worlds, relation):
    world, full = worlds
    columns = COMPARED[relation]
    incremental = world.texts(relation, columns)
    assert incremental, f"{relation} is empty"
    assert incremental == full.texts(relation, columns)


def test_over_time_incremental_equals_full_refresh(worlds):
    world, full = worlds
    incremental, rebuilt = _over_time_pair(world, full)
    assert len(incremental) == 24 + 60
    assert incremental == rebuilt


def test_state_excludes_deleted_rows(worlds):
    world, _ = worlds
    raw = world.query("select cnt, count(*) as n from raw.responses group by cnt")
    state = world.query("select cnt, submissions as n from marts.country_index_state")
    assert sorted((r["cnt"], r["n"]) for r in state) == sorted((r["cnt"], r["n"]) for r in raw)
    tombstoned = world.query("select count(*) as n from raw.responses_deleted")[0]["n"]
    assert tombstoned > 0


@pytest.fixture(scope="module")
def with_tail(worlds):
    """Rows added after the last dbt run: only the serving views' tail can see them."""
    world, _ = worlds
    mark = world.query("select max(_load_seq_mark) as m from marts.country_index_state")[0]["m"]
    extra = [dict(r, _id=TAIL_OFFSET + i) for i, r in enumerate(pool_rows()[:45])]
    world.insert(extra)
    beyond = world.query("select count(*) as n from raw.responses where _load_seq > %s", (mark,))[
        0
    ]["n"]
    assert beyond == len(extra)
    return world


def test_submissions_count_every_raw_row(with_tail):
    world = with_tail
    raw = world.query("select count(*) as n from raw.responses")[0]["n"]
    assert world.query("select count from marts.forage_submissions")[0]["count"] == raw


@pytest.mark.parametrize(
    ("view", "index", "mean_column", "n_column"),
    [
        ("forage_learning_hours", "tmins", "tmins_mean", "n"),
        ("forage_escs", "escs", "value", "n"),
        ("forage_early_education_belonging", "durecec", "durecec_mean", None),
        ("forage_early_education_belonging", "belong", "belong_mean", None),
    ],
)
def test_serving_means_equal_direct_recomputation(with_tail, view, index, mean_column, n_column):
    world = with_tail
    direct = direct_means(world, index)
    served = {r["country"]: r for r in world.query(f"select * from marts.{view}")}
    assert set(served) == set(direct)
    for country, row in served.items():
        assert row[mean_column] == direct[country]["mean"], (country, index)
        if n_column:
            assert row[n_column] == direct[country]["n"]
            assert row["weighted"] == direct[country]["weighted"]
        else:
            assert row["submissions"] == direct[country]["submissions"]


def test_learning_hours_round_the_mean(with_tail):
    world = with_tail
    direct = direct_means(world, "tmins")
    for row in world.query("select * from marts.forage_learning_hours"):
        mean = direct[row["country"]]["mean_numeric"]
        expected = int((mean / 60).quantize(Decimal(1), rounding=ROUND_HALF_UP))
        assert row["hours"] == expected


def test_over_time_equals_direct_count(with_tail):
    world = with_tail
    served = world.query("select * from marts.forage_submissions_over_time")
    created = [r["created_at"] for r in world.query("select created_at from raw.responses")]
    assert [r["granularity"] for r in served] == ["hour"] * 24 + ["minute"] * 60
    for granularity, width in (
        ("hour", dt.timedelta(hours=1)),
        ("minute", dt.timedelta(minutes=1)),
    ):
        buckets = [r for r in served if r["granularity"] == granularity]
        starts = [r["bucket_start"] for r in buckets]
        assert starts == sorted(starts)
        assert all(b - a == width for a, b in zip(starts, starts[1:], strict=False))
        for r in buckets:
            expected = sum(1 for c in created if r["bucket_start"] <= c < r["bucket_start"] + width)
            assert r["submissions"] == expected, (granularity, r["label"])
            assert r["label"] == r["bucket_start"].astimezone(dt.UTC).strftime("%H:%M")
    assert sum(r["submissions"] for r in served if r["granularity"] == "minute") > 0
