"""Columns follow the sources YAML; rows that cannot be stored are quarantined; discovery."""

from __future__ import annotations

import shutil

import psycopg2
import pytest
import yaml

from pisa_pulse.loader import Loader
from pisa_pulse.loader.columns import SOURCES_YML, declared_columns
from pisa_pulse.sim import api as sim
from pisa_pulse.sim.schema import responses_ddl
from tests.support.loader_world import assert_same_rows, source_execute, warehouse_query


@pytest.fixture
def world(pulse_env):
    pulse_env.sources = ["FRA", "ITA"]
    sim.setup_databases(pulse_env, pulse_env.sources)
    yield pulse_env
    sim.drop_databases(pulse_env, pulse_env.sources)


def test_declared_columns_map_cnt_to_cnt_reported():
    cols = {c.name: c.source for c in declared_columns()}
    assert cols["cnt_reported"] == "cnt"
    assert "cnt" not in cols and "_load_seq" not in cols
    assert cols["st004d01t"] == "st004d01t"


def test_a_column_added_to_the_yaml_is_loaded_and_backfilled(world, tmp_path):
    yml = tmp_path / "_pisa__sources.yml"
    shutil.copy(SOURCES_YML, yml)
    sim.backfill(world, 200, countries=world.sources, seed=11)
    with Loader(world, sources_yml=yml, reconcile_interval=0) as loader:
        loader.tick()
        assert_same_rows(world, world.sources)
        spec = yaml.safe_load(yml.read_text())
        table = spec["sources"][0]["tables"][0]
        assert all(c["name"] != "stratum" for c in table["columns"])
        table["columns"].append({"name": "stratum", "description": "Stratum"})
        yml.write_text(yaml.safe_dump(spec, sort_keys=False))
        sim.insert_rows(world, "FRA", 7, seed=12)
        loader.tick()  # adds the column, loads the new rows with it
        loader.tick()  # fills it on the rows loaded before
        loader.tick()
    assert_same_rows(world, world.sources)
    for cnt in world.sources:
        conn = psycopg2.connect(world.source_url(cnt))
        with conn.cursor() as cur:
            cur.execute("select id, stratum from public.responses")
            expected = dict(cur.fetchall())
        conn.close()
        got = dict(
            warehouse_query(world, "select id, stratum from raw.responses where cnt = %s", (cnt,))
        )
        assert got == expected
    (cols,) = warehouse_query(
        world, "select loaded_columns from raw.loader_sources where cnt = 'FRA'"
    )[0]
    assert "stratum" in cols


def test_bad_rows_are_quarantined_and_the_batch_goes_on(world, pg_server):
    # A SQL_ASCII source database can hold bytes that are not UTF-8.
    name = world.source_database("DEU")
    conn = psycopg2.connect(f"{pg_server}/postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"create database \"{name}\" encoding 'SQL_ASCII' template template0")
    conn.close()
    source_execute(world, "DEU", responses_ddl())
    source_execute(
        world,
        "DEU",
        "insert into public.responses (id, cnt, st004d01t) values "
        "(1, 'DEU', '1'), (2, 'DEU', convert_from('\\xc328'::bytea, 'SQL_ASCII')), (3, 'DEU', '2')",
    )
    source_execute(
        world,
        "FRA",
        "insert into public.responses (id, cnt, st004d01t) values (10, 'FRA', repeat('x', 20000)),"
        " (11, 'FRA', '1')",
    )
    countries = ["FRA", "ITA", "DEU"]
    try:
        with Loader(world, sources=countries) as loader:
            result = loader.tick()
            assert result.quarantined == {"DEU": 1, "FRA": 1}
            assert result.rows == {"DEU": 2, "FRA": 1}
            again = loader.reconcile()
            assert again.quarantined == {} and again.rows == {}
        rows = warehouse_query(
            world, "select cnt, id, reason, column_name from raw.quarantine order by id"
        )
        assert rows == [
            ("DEU", 2, "invalid UTF-8", "st004d01t"),
            ("FRA", 10, "value longer than 10000 characters", "st004d01t"),
        ]
        assert sorted(warehouse_query(world, "select id from raw.responses")) == [(1,), (3,), (11,)]
    finally:
        sim.drop_databases(world, ["DEU"])


def test_sources_are_discovered_including_new_databases(pulse_env):
    pulse_env.sources = None
    sim.setup_databases(pulse_env, ["FRA"])
    try:
        with Loader(pulse_env, reconcile_interval=0) as loader:
            loader.tick()
            assert loader.sources == ["FRA"]
            sim.setup_databases(pulse_env, ["MEX"])
            sim.insert_rows(pulse_env, "MEX", 3, seed=13)
            loader.tick()
            assert loader.sources == ["FRA", "MEX"]
            loader.tick()
        assert_same_rows(pulse_env, ["FRA", "MEX"])
    finally:
        sim.drop_databases(pulse_env, ["FRA", "MEX"])
