"""The learned parameter seeds are what `pulse params learn` gets from the real rows.

The warehouse here holds the 1,269 real PISA 2018 rows of data/pisa2018/ exactly as the
simulator stores them; `pulse params learn` must reproduce seeds/learned_*.csv from them,
and what it learns must agree with the tables observed independently in the same records.

To regenerate the seeds after a change to the learning views:
    PULSE_WRITE_LEARNED_SEEDS=1 python -m pytest tests/indices/test_params_learn.py
"""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg2
import pytest

from pisa_pulse.indices.params import LEARNED_TABLES, SEEDS_DIR, learn, learned_csv
from pisa_pulse.loader.raw_fixture import create_raw_schema, insert_pool_rows
from tests.support.databases import create_database
from tests.support.dbt_indices_world import make_world

WRITE = os.environ.get("PULSE_WRITE_LEARNED_SEEDS") == "1"


@pytest.fixture(scope="module")
def world(pg_server, tmp_path_factory):
    url = create_database(pg_server, f"learn_{uuid.uuid4().hex[:8]}")
    w = make_world(url, tmp_path_factory.mktemp("params_learn"))
    conn = psycopg2.connect(url)
    create_raw_schema(conn)
    insert_pool_rows(conn)
    conn.close()
    w.dbt("seed")
    w.dbt("run", "--select", "+tag:learning")
    return w


def _rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def test_learn_writes_every_seed(world, tmp_path):
    written = learn(world.url, tmp_path, build_views=False, progress=lambda _: None)
    for table in LEARNED_TABLES:
        assert (tmp_path / f"{table.seed}.csv").exists()
        assert written[table.seed] > 0
    if WRITE:
        learn(world.url, SEEDS_DIR, build_views=False)


@pytest.mark.parametrize("table", LEARNED_TABLES, ids=lambda t: t.seed)
def test_shipped_seed_is_what_the_real_rows_teach(world, table):
    shipped = (SEEDS_DIR / f"{table.seed}.csv").read_text()
    assert shipped == learned_csv(world.url, table), (
        f"seeds/{table.seed}.csv is stale: regenerate it (see this module's docstring)"
    )


def test_learned_pared_agrees_with_the_observed_table(world):
    learned = _rows(learned_csv(world.url, LEARNED_TABLES[0]))
    with open(SEEDS_DIR / "pared_years_by_country_observed.csv") as f:
        observed = {(r["cnt"], r["hisced"]): float(r["pared_years"]) for r in csv.DictReader(f)}
    assert {r["cnt"] for r in learned} == {"FRA", "ITA", "MEX"}
    for r in learned:
        assert float(r["pared_years"]) == observed[(r["cnt"], r["hisced"])]


def test_learned_isei_agrees_with_the_observed_map(world):
    learned = _rows(learned_csv(world.url, LEARNED_TABLES[1]))
    with open(SEEDS_DIR / "isco08_to_isei_pisa2018_observed.csv") as f:
        observed = {r["isco08"]: float(r["isei_pisa2018"]) for r in csv.DictReader(f)}
    assert len(learned) > 100
    for r in learned:
        if r["isco08"] in observed:
            assert float(r["isei"]) == observed[r["isco08"]]


def test_escs_regressions_per_pool_country_and_pooled(world):
    params = _rows(learned_csv(world.url, LEARNED_TABLES[3]))
    assert {(r["cnt"], r["component"]) for r in params} == {
        (c, x) for c in ("*", "FRA", "ITA", "MEX") for x in ("hisei", "paredint", "homepos")
    }
    for r in params:
        # a component's own coefficient is 0; the others carry the (positive) association
        assert float(r[f"coef_{r['component']}"]) == 0
        others = [
            float(r[f"coef_{x}"]) for x in ("hisei", "paredint", "homepos") if x != r["component"]
        ]
        assert all(c > 0 for c in others)


def _pulse(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).with_name("pulse")), *args], capture_output=True, text=True
    )


def test_cli_writes_the_seeds(world, tmp_path):
    done = _pulse("params", "learn", "--url", world.url, "--out", str(tmp_path), "--no-dbt")
    assert done.returncode == 0, done.stderr
    for table in LEARNED_TABLES:
        assert table.seed in done.stdout
        assert (tmp_path / f"{table.seed}.csv").read_text() == learned_csv(world.url, table)


def test_cli_says_what_to_do_without_the_views(pg_server, tmp_path):
    url = create_database(pg_server, f"nolearn_{uuid.uuid4().hex[:8]}")
    done = _pulse("params", "learn", "--url", url, "--out", str(tmp_path), "--no-dbt")
    assert done.returncode == 2
    assert "build the learning views first" in done.stderr
    assert "Traceback" not in done.stderr
