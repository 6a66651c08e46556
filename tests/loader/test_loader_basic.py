"""The loader against real PostgreSQL sources filled by the real simulator."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import psycopg2
import pytest

from pisa_pulse.loader import Loader
from pisa_pulse.loader.columns import declared_columns
from pisa_pulse.loader.source import ReadRequest, SourceReader, Watermark
from pisa_pulse.sim import api as sim
from tests.support.loader_world import (
    assert_same_rows,
    simulated_sources,
    source_execute,
    warehouse_query,
)

COUNTRIES = ["FRA", "ITA", "MEX"]


@pytest.fixture
def world(pulse_env):
    with simulated_sources(pulse_env, COUNTRIES) as settings:
        yield settings


def test_backfill_then_incremental_loads_every_row_once(world):
    sim.backfill(world, 900, countries=COUNTRIES, seed=1)
    with Loader(world, page_rows=200) as loader:
        first = loader.tick()
        assert first.total_rows > 0
        for _ in range(10):
            loader.tick()
        assert assert_same_rows(world, COUNTRIES) == 900
        ids = sim.insert_rows(world, "ITA", 25, seed=2)
        result = loader.tick()
        assert result.rows == {"ITA": 25}
        assert result.committed_at is not None and result.load_seq is not None
        assert loader.tick().total_rows == 0
    assert_same_rows(world, COUNTRIES)
    # cnt is the source database's country, not the row's own (messy) CNT answer.
    rows = warehouse_query(
        world, "select distinct cnt from raw.responses where id = any(%s)", (ids,)
    )
    assert rows == [("ITA",)]


def test_restart_resumes_from_the_committed_watermark(world):
    sim.backfill(world, 300, countries=COUNTRIES, seed=3)
    with Loader(world) as loader:
        loader.tick()
    sim.insert_rows(world, "FRA", 10, seed=4)
    with Loader(world) as loader:
        assert loader.tick().rows == {"FRA": 10}
    # close() leaves no read thread behind (the real-time loop runs it in-process).
    assert not [t for t in threading.enumerate() if t.name.startswith("loader-read")]
    assert_same_rows(world, COUNTRIES)
    ((seqs, distinct),) = warehouse_query(
        world, "select count(_load_seq), count(distinct _load_seq) from raw.responses"
    )
    assert seqs == distinct == 310


def test_emptied_source_is_removed_with_tombstones(world):
    sim.backfill(world, 300, countries=COUNTRIES, seed=5)
    with Loader(world, reconcile_interval=3600) as loader:
        loader.tick()
        (before,) = warehouse_query(world, "select count(*) from raw.responses where cnt='MEX'")[0]
        assert before > 0
        sim.empty(world, "MEX")
        source_execute(world, "FRA", "delete from public.responses where id % 2 = 0")
        result = loader.reconcile()
        assert result.deleted["MEX"] == before
        assert result.deleted["FRA"] > 0
    assert_same_rows(world, COUNTRIES)
    ((tombstones, later),) = warehouse_query(
        world,
        "select count(*), count(*) filter (where d._load_seq > r_max) from raw.responses_deleted d,"
        " (select max(_load_seq) r_max from raw.responses where cnt = 'ITA') m",
    )
    assert tombstones == before + result.deleted["FRA"]
    assert later == tombstones  # tombstones sort after every row they remove


def test_loader_sources_reports_status_and_lag(world):
    sim.insert_rows(world, "FRA", 5, seed=6)
    with Loader(world) as loader:
        loader.tick()
        loader.tick()
    rows = warehouse_query(
        world,
        "select cnt, status, rows_loaded, lag_ms, last_polled_at is not null, horizon_xid "
        "from raw.loader_sources order by cnt",
    )
    assert [r[0] for r in rows] == COUNTRIES
    fra = rows[0]
    assert fra[1] == "ok" and fra[2] == 5 and fra[3] is not None and fra[3] >= 0 and fra[4]
    assert all(r[5] is not None for r in rows)


def test_pulse_load_once_loads_everything_and_exits(world):
    sim.backfill(world, 2500, countries=COUNTRIES, seed=7)  # more than one page per source
    env = dict(os.environ, PULSE_SOURCES="fra,ita,mex")
    done = subprocess.run(
        [sys.executable, "-m", "pisa_pulse.cli.load", "--once"],
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert b"loaded 2500 rows" in done.stdout
    assert_same_rows(world, COUNTRIES)


def test_rows_read_once_while_another_transaction_pins_the_horizon(world):
    """An open transaction anywhere on the source's server holds the snapshot xmin (the
    horizon) back, so every read finds the rows of earlier reads again; they are skipped by
    (id, xmin), not copied again. Rows committed meanwhile are still all read."""
    sim.backfill(world, 30, countries=["FRA"], seed=5)
    pin = psycopg2.connect(world.source_url("ITA"))  # another database, same server
    reader = SourceReader("FRA", world.source_url("FRA"))
    try:
        with pin.cursor() as cur:
            cur.execute("select pg_current_xact_id()")  # an xid: the horizon stays behind it
        columns = declared_columns()
        wm = Watermark()
        while wm.horizon_xid is None or wm.backfill_after_id is not None:  # the first copy
            wm = reader.read(ReadRequest("FRA", wm, columns)).watermark

        def read() -> int:
            nonlocal wm
            batch = reader.read(ReadRequest("FRA", wm, columns))
            wm = batch.watermark
            return batch.rows.count(b"\n")

        sim.insert_rows(world, "FRA", 7, seed=6)
        assert read() == 7
        assert len(wm.recent) == 7  # found again by every read while the pin holds
        sim.insert_rows(world, "FRA", 3, seed=7)
        assert read() == 3
        assert read() == 0
        source_execute(world, "FRA", "update public.responses set st004d01t = '1'")
        assert read() == 40  # a new row version (new xmin) is read again
    finally:
        pin.rollback()
        pin.close()
        reader.close()
