"""`pulse run` under load, through faults: freshness comes back within 10 s of each fault
ending, and at the end the served numbers equal a full recomputation.

One world for the module (building the dbt project is the expensive part): application
databases on the session's PostgreSQL, the warehouse on a cluster of its own (so that it
alone can be stopped), a simulator stream in this process, `pulse run` as a subprocess.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import psycopg2
import pytest

from pisa_pulse.core import config
from pisa_pulse.core.cluster import Cluster, find_pg_bin, free_port
from pisa_pulse.realtime.probe import served_count, source_total, wait_for

COUNTRIES = ["fra", "ita", "mex"]
RECOVERY_S = 10.0  # the brief: freshness recovers within 10 s of the fault ending
FIRST_BUILD_S = 900.0  # seed + full build on a busy 2-core machine


class World:
    def __init__(self, tmp, pg_server):
        self.tmp = tmp
        self.prefix = f"rt{uuid.uuid4().hex[:6]}"
        self.warehouse = Cluster(tmp / "warehouse" / "pg", free_port(), find_pg_bin())
        self.warehouse.start()
        admin = psycopg2.connect(self.warehouse.url())
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute("create database warehouse")
        admin.close()
        self.sources_server = pg_server
        self.sqlite = tmp / "home" / "pulse.db"
        self.env = {
            **os.environ,
            "PULSE_HOME": str(tmp / "home"),
            "PULSE_WAREHOUSE_URL": self.warehouse.url("warehouse"),
            "PULSE_SOURCE_URL_TEMPLATE": f"{pg_server}/{self.prefix}_{{country}}",
            "PULSE_SOURCES": ",".join(COUNTRIES),
        }
        self.settings = config.Settings(
            home=tmp / "home",
            warehouse_url=self.env["PULSE_WAREHOUSE_URL"],
            source_url_template=self.env["PULSE_SOURCE_URL_TEMPLATE"],
            sources=COUNTRIES,
        )
        self.process: subprocess.Popen | None = None
        self.stream = None

    def start_pipeline(self) -> None:
        log = open(self.tmp / "pulse-run.log", "ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pisa_pulse.cli",
                "run",
                "--no-jobs",
                "--sqlite",
                str(self.sqlite),
            ],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def log_tail(self) -> str:
        return (self.tmp / "pulse-run.log").read_text()[-3000:]

    def fresh_within(self, timeout: float) -> float | None:
        """Seconds until every row committed so far is served (None: not within timeout)."""
        target = source_total(self.settings, COUNTRIES)
        return wait_for(lambda: (served_count(self.sqlite) or -1) >= target, timeout)

    def exactly_served_within(self, timeout: float) -> float | None:
        """With the stream paused: seconds until the served count equals the sources'."""
        target = source_total(self.settings, COUNTRIES)
        return wait_for(lambda: served_count(self.sqlite) == target, timeout)

    def source_connections(self, cnt: str, allow: bool) -> None:
        admin = psycopg2.connect(f"{self.sources_server}/postgres")
        admin.autocommit = True
        name = self.settings.source_database(cnt)
        with admin.cursor() as cur:
            cur.execute(f'alter database "{name}" allow_connections {str(allow).lower()}')
            if not allow:
                cur.execute(
                    "select pg_terminate_backend(pid) from pg_stat_activity where datname = %s",
                    (name,),
                )
        admin.close()


@pytest.fixture(scope="module")
def world(pg_server, tmp_path_factory):
    from pisa_pulse.sim import api as sim
    from pisa_pulse.sim.stream import Stream

    w = World(tmp_path_factory.mktemp("realtime_faults"), pg_server)
    sim.setup_databases(w.settings)
    sim.backfill(w.settings, 300, seed=7)
    w.start_pipeline()
    built = wait_for(lambda: served_count(w.sqlite) == 300, FIRST_BUILD_S, interval=0.5)
    assert built is not None, f"pulse run never served the backfill:\n{w.log_tail()}"
    w.stream = Stream(w.settings, rate=5, countries=COUNTRIES, seed=11, writers=1).start()
    yield w
    w.stream.stop()
    if w.process and w.process.poll() is None:
        w.process.kill()
        w.process.wait()
    sim.drop_databases(w.settings, COUNTRIES)
    w.warehouse.destroy()


def test_fresh_under_load(world):
    took = world.fresh_within(RECOVERY_S)
    assert took is not None, world.log_tail()


def test_sigkill_and_restart(world):
    world.process.send_signal(signal.SIGKILL)
    world.process.wait()
    time.sleep(2)  # submissions keep coming while nothing loads them
    world.start_pipeline()  # the fault ends here
    took = world.fresh_within(RECOVERY_S)
    assert took is not None, world.log_tail()


def test_warehouse_stopped_for_10_s(world):
    world.warehouse.stop("fast")
    time.sleep(10)
    world.warehouse.start()
    took = world.fresh_within(RECOVERY_S)
    assert took is not None, world.log_tail()
    assert world.process.poll() is None  # the loop rode it out


def test_source_stopped_for_10_s(world):
    world.source_connections("mex", allow=False)
    try:
        time.sleep(10)
    finally:
        world.source_connections("mex", allow=True)
    took = world.fresh_within(RECOVERY_S)
    assert took is not None, world.log_tail()


def test_source_emptied(world):
    from pisa_pulse.sim import api as sim

    world.stream.pause()
    time.sleep(1)  # let transactions already under way commit
    try:
        sim.empty(world.settings, "ita")
        took = world.exactly_served_within(RECOVERY_S)
        assert took is not None, world.log_tail()
    finally:
        world.stream.resume()


def test_graceful_stop_and_final_numbers_equal_a_full_recomputation(world):
    from pisa_pulse.realtime.check import check

    world.stream.stop()
    assert world.exactly_served_within(30) is not None
    result = check(world.settings, sqlite_path=world.sqlite, wait=30, work_dir=world.tmp)
    assert result.ok, result.problems
    assert result.source_count == served_count(world.sqlite)
    world.process.send_signal(signal.SIGTERM)
    assert world.process.wait(60) == 0


def test_a_calibration_landing_during_the_check_is_waited_out(world, monkeypatch):
    """A HOMEPOS block written while the check recomputes (as a data-triggered job lands
    one) makes the check recompute again over a stretch with none landing, not report a
    difference it caused itself (realtime/check.py)."""
    from pisa_pulse.realtime import check as check_module

    real_recompute = check_module.recompute
    recomputed = []

    def recompute_then_a_block_lands(*args, **kwargs):
        out = real_recompute(*args, **kwargs)
        recomputed.append(out)
        if len(recomputed) == 1:
            conn = psycopg2.connect(world.settings.warehouse_url)
            with conn, conn.cursor() as cur:
                cur.execute(
                    "insert into calibration.homepos_params"
                    " (cnt, version, method, item, a, b1, n_rows)"
                    " select 'ZZZ', coalesce(max(version), 0) + 1, 'mml', 'ST011Q01TA', 1, 0, 1"
                    " from calibration.homepos_params where cnt = 'ZZZ'"
                )
            conn.close()
        return out

    monkeypatch.setattr(check_module, "recompute", recompute_then_a_block_lands)
    result = check_module.check(
        world.settings, sqlite_path=world.sqlite, wait=30, work_dir=world.tmp
    )
    assert len(recomputed) == 2  # the first one was not trusted
    assert result.ok, result.problems
