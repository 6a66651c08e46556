"""Fault injection: held transactions, SIGKILLs, emptied, dropped and stopped sources,
a restarted warehouse; every test ends with an exact (cnt, id) comparison both ways."""

from __future__ import annotations

import logging
import os
import random
import signal
import subprocess
import sys
import time
import uuid

import psycopg2
import pytest

from pisa_pulse.core import config
from pisa_pulse.core.cluster import Cluster, find_pg_bin, free_port
from pisa_pulse.loader import Loader
from pisa_pulse.loader.engine import WarehouseUnavailable
from pisa_pulse.sim import api as sim
from tests.support.databases import create_database
from tests.support.loader_world import (
    assert_same_rows,
    simulated_sources,
    source_keys,
    warehouse_keys,
)

COUNTRIES = ["FRA", "ITA", "MEX"]


def converge(settings, countries, timeout=30.0, loader=None):
    """Tick (or wait for a running loader) until the warehouse matches the sources."""
    deadline = time.monotonic() + timeout
    while True:
        if loader is not None:
            loader.tick()
        try:
            loaded = warehouse_keys(settings)
        except psycopg2.errors.UndefinedTable:
            loaded = None  # the loader has not created the raw layer yet
        if source_keys(settings, countries) == loaded:
            return assert_same_rows(settings, countries)
        if time.monotonic() > deadline:
            return assert_same_rows(settings, countries)  # fails with the difference
        time.sleep(0.2)


@pytest.fixture
def world(pulse_env):
    with simulated_sources(pulse_env, COUNTRIES) as settings:
        yield settings


@pytest.fixture(scope="module")
def second_server(tmp_path_factory):
    """A PostgreSQL server of our own that tests may stop and start."""
    cluster = Cluster(
        data_dir=tmp_path_factory.mktemp("second") / "pg", port=free_port(), bin_dir=find_pg_bin()
    )
    cluster.start()
    yield cluster
    cluster.stop("immediate")


def _start_loader(world, log_path, starts: int):
    """`pulse load` (as `python -m pisa_pulse.cli.load`, without the other areas); returns
    once it has started ticking (it logs its sources on the first tick)."""
    env = dict(os.environ, PULSE_SOURCES=",".join(c.lower() for c in COUNTRIES))
    proc = subprocess.Popen(
        [sys.executable, "-m", "pisa_pulse.cli.load", "--interval", "0.1"]
        + ["--reconcile-interval", "1", "--overlap", "0.5"],
        env=env,
        stdout=open(log_path, "ab"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if log_path.exists() and log_path.read_text().count("source FRA:") >= starts:
            break
        time.sleep(0.05)
    return proc


def test_held_transactions_and_sigkills_lose_and_duplicate_nothing(world, tmp_path):
    rng = random.Random(7)
    log_path = tmp_path / "loader.log"
    # Held transactions (1.2 s) outlast the overlap (0.5 s): the reconciliation must catch them.
    stream = sim.Stream(
        world, 150, countries=COUNTRIES, writers=2, seed=8, hold_fraction=0.3, hold_seconds=1.2
    )
    stream.start()
    proc = _start_loader(world, log_path, 1)
    try:
        for i in range(4):
            time.sleep(rng.uniform(0.05, 1.5))  # a random moment of a running loader
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            proc = _start_loader(world, log_path, i + 2)
        time.sleep(1.0)
    finally:
        stream.stop()
    # The operator empties a source while the loader runs (after the stream: a TRUNCATE
    # queued behind a held transaction would block that transaction's own writer thread).
    sim.empty(world, "MEX")
    try:
        n = converge(world, COUNTRIES, timeout=40)
        assert n > 100
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    assert stream.stats()["rows_committed"] > n  # MEX's rows were removed


def test_a_dropped_source_does_not_stop_the_others(world, caplog):
    caplog.set_level(logging.INFO, logger="loader")
    with Loader(world, max_backoff_s=0.4) as loader:
        sim.insert_rows(world, "FRA", 5, seed=20)
        loader.tick()
        sim.drop_databases(world, ["ITA"])
        for i in range(15):
            sim.insert_rows(world, "FRA", 2, seed=30 + i)
            result = loader.tick()
            assert result.total_s < 2.0
        down = [r for r in caplog.records if "source ITA down" in r.getMessage()]
        assert len(down) == 1  # logged once per outage, not per tick
        sim.setup_databases(world, ["ITA"])
        sim.insert_rows(world, "ITA", 4, seed=50)
        time.sleep(0.5)
        converge(world, COUNTRIES, loader=loader, timeout=15)
        assert any("source ITA back" in r.getMessage() for r in caplog.records)
    from tests.support.loader_world import warehouse_query

    assert warehouse_query(world, "select status from raw.loader_sources where cnt = 'ITA'") == [
        ("ok",)
    ]


def test_source_server_stopped_and_restarted(second_server, fresh_db, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="loader")
    prefix = f"s{uuid.uuid4().hex[:6]}"
    settings = config.Settings(
        home=tmp_path,
        warehouse_url=fresh_db("wh"),
        source_url_template=second_server.url(prefix + "_{country}"),
        sources=list(COUNTRIES),
    )
    sim.setup_databases(settings, COUNTRIES)
    sim.backfill(settings, 300, countries=COUNTRIES, seed=60)
    with Loader(settings, max_backoff_s=0.5) as loader:
        loader.tick()
        second_server.stop("immediate")
        for _ in range(10):
            result = loader.tick()
            assert result.total_s < 3.0
        assert sorted(result.down) == COUNTRIES
        second_server.start()
        sim.insert_rows(settings, "MEX", 9, seed=61)
        converge(settings, COUNTRIES, loader=loader, timeout=20)
    for cnt in COUNTRIES:
        msgs = [r for r in caplog.records if f"source {cnt} down" in r.getMessage()]
        assert len(msgs) == 1
    sim.drop_databases(settings, COUNTRIES)


def test_warehouse_restart_fails_ticks_cleanly_then_resumes(second_server, world):
    second_server.start()
    warehouse = create_database(f"postgresql://postgres@127.0.0.1:{second_server.port}", "wh_r")
    world.warehouse_url = warehouse
    sim.backfill(world, 200, countries=COUNTRIES, seed=70)
    with Loader(world) as loader:
        loader.tick()
        second_server.stop("immediate")
        sim.insert_rows(world, "FRA", 6, seed=71)
        with pytest.raises(WarehouseUnavailable):
            loader.tick()
        with pytest.raises(WarehouseUnavailable):
            loader.tick()
        second_server.start()
        sim.insert_rows(world, "ITA", 6, seed=72)
        converge(world, COUNTRIES, loader=loader, timeout=20)
