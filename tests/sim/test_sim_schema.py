"""The application databases' schema matches the codebook."""

from __future__ import annotations

import psycopg2
import pytest

from pisa_pulse.core import codebook
from pisa_pulse.sim import api
from tests.support.sim_world import fetch


@pytest.fixture
def sim_settings(pulse_env):
    """Settings whose application databases are private to the test; dropped afterwards."""
    yield pulse_env
    api.drop_databases(pulse_env)


def _schema(settings, country: str) -> dict:
    columns = fetch(
        settings,
        country,
        "select column_name, data_type, is_nullable, column_default"
        " from information_schema.columns"
        " where table_schema = 'public' and table_name = 'responses' order by ordinal_position",
    )
    pk = fetch(
        settings,
        country,
        "select a.attname from pg_index i"
        " join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)"
        " where i.indrelid = 'public.responses'::regclass and i.indisprimary",
    )
    indexes = fetch(
        settings,
        country,
        "select indexdef from pg_indexes where schemaname = 'public' and tablename = 'responses'",
    )
    return {"columns": columns, "pk": [r[0] for r in pk], "indexes": [r[0] for r in indexes]}


def _assert_matches_codebook(schema: dict) -> None:
    columns = schema["columns"]
    names = [c[0] for c in columns]
    assert names == ["id", "created_at", *codebook.variables()]
    assert len(names) == 2 + 1118
    assert columns[0][1:3] == ("bigint", "NO")
    assert columns[1][1:3] == ("timestamp with time zone", "NO")
    assert columns[1][3] == "now()"
    assert {c[1] for c in columns[2:]} == {"text"}
    assert schema["pk"] == ["id"]
    assert any("(created_at)" in d for d in schema["indexes"])


def test_setup_is_idempotent_and_matches_codebook(sim_settings):
    names = api.setup_databases(sim_settings, ["FRA", "alb"])
    assert names == [sim_settings.source_database("FRA"), sim_settings.source_database("ALB")]
    api.insert_rows(sim_settings, "FRA", 3, seed=1)
    assert api.setup_databases(sim_settings, ["FRA"]) == names[:1]  # again: nothing lost
    assert api.count_rows(sim_settings) == {"ALB": 0, "FRA": 3}
    _assert_matches_codebook(_schema(sim_settings, "ALB"))


def test_unknown_country_is_refused(sim_settings):
    with pytest.raises(ValueError, match="unknown country"):
        api.setup_databases(sim_settings, ["XXX"])


def test_all_82_databases(sim_settings, pg_server):
    api.setup_databases(sim_settings)
    conn = psycopg2.connect(f"{pg_server}/postgres")
    with conn.cursor() as cur:
        cur.execute("select datname from pg_database")
        present = {r[0] for r in cur.fetchall()}
    conn.close()
    wanted = {sim_settings.source_database(c) for c in codebook.countries()}
    assert len(wanted) == 82
    assert wanted <= present
    assert len(api.existing_countries(sim_settings)) == 82
    _assert_matches_codebook(_schema(sim_settings, "VNM"))
