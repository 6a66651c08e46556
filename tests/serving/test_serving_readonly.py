"""Datasette for analysts: read-only SQL with a time limit, metadata, canned queries, facets."""

from __future__ import annotations

import sqlite3
import time
import uuid
from urllib.parse import urlencode

import pytest

from pisa_pulse.serving import catalog
from pisa_pulse.serving.app import SETTINGS, load_metadata, make_datasette
from pisa_pulse.serving.publisher import PUBLICATION_TABLE, Publisher
from tests.support.databases import create_database
from tests.support.serving_marts import Client, create_marts, digest, random_marts


@pytest.fixture(scope="module")
def world(pg_server, tmp_path_factory):
    url = create_database(pg_server, f"serving_ro_{uuid.uuid4().hex[:8]}")
    data = random_marts()
    create_marts(url, data)
    path = tmp_path_factory.mktemp("serving_ro") / "pulse.db"
    with Publisher(url, path) as pub:
        pub.publish_once()
    client = Client(make_datasette(path))
    yield data, client, path
    client.close()


@pytest.mark.parametrize(
    "sql",
    [
        "delete from forage_submissions",
        "update forage_escs set value = 99",
        "insert into forage_submissions values (1)",
        "drop table forage_escs",
        "create table x (a)",
        "pragma journal_mode=delete",
        "attach database ':memory:' as other",
        "select 1; delete from forage_submissions",
        "vacuum",
        "replace into forage_submissions values (5)",
        "with t as (select 1) delete from forage_escs",
    ],
)
def test_analysts_sql_cannot_write(world, sql):
    _, client, path = world
    before = digest(path)
    reply = client.request("/pulse.json", urlencode({"sql": sql}))
    assert reply.status != 200 or reply.json().get("ok") is False
    assert reply.status != 500
    assert digest(path) == before


def test_analysts_sql_reads(world):
    data, client, _ = world
    reply = client.request(
        "/pulse.json", urlencode({"sql": "select count from forage_submissions"})
    )
    assert reply.status == 200
    assert reply.json()["rows"] == [[data["forage_submissions"][0][0]]]


def test_analysts_sql_has_a_time_limit(world):
    _, client, _ = world
    runaway = (
        "with recursive n(i) as (select 1 union all select i + 1 from n) select count(*) from n"
    )
    started = time.monotonic()
    reply = client.request("/pulse.json", urlencode({"sql": runaway}))
    elapsed = time.monotonic() - started
    assert reply.status == 400
    assert "too long" in reply.json()["error"].lower()
    assert elapsed < SETTINGS["sql_time_limit_ms"] / 1000 + 5


def test_settings_forbid_caching_and_downloads(world):
    _, client, _ = world
    settings = client.request("/-/settings.json").json()
    assert settings["default_cache_ttl"] == 0
    assert settings["allow_download"] is False
    assert settings["sql_time_limit_ms"] <= 1000
    assert client.request("/pulse.db").status in (403, 404)


def test_no_write_routes_exist(world):
    _, client, path = world
    before = digest(path)
    for route in ("/pulse/forage_escs/-/insert", "/pulse/-/create", "/pulse/forage_escs/-/drop"):
        reply = client.request(route, method="POST")
        assert reply.status in (403, 404, 405)
    assert digest(path) == before


def test_every_published_table_and_column_has_metadata(world):
    _, client, path = world
    meta = load_metadata()
    assert meta["license"] and meta["license_url"] and meta["source"] and meta["source_url"]
    tables = meta["databases"]["pulse"]["tables"]
    for table in (*catalog.load().names(), PUBLICATION_TABLE):
        assert tables[table]["title"] and tables[table]["description"], table
    conn = sqlite3.connect(path)
    published = [r[0] for r in conn.execute("select name from sqlite_master where type='table'")]
    for table in published:
        columns = [r[1] for r in conn.execute(f'pragma table_info("{table}")')]
        described = tables[table].get("columns", {})
        assert set(columns) <= set(described), (table, set(columns) - set(described))
    conn.close()
    # Datasette serves the metadata (licence, source) with the table.
    page = client.request("/pulse/forage_escs.json").json()
    assert page["human_description_en"] is not None
    assert "OECD" in client.request("/pulse/forage_escs").body.decode()


def test_canned_queries(world):
    data, client, _ = world
    queries = {q["name"] for q in client.request("/pulse.json").json()["queries"]}
    assert {"country_profile", "reconciliation", "data_quality", "freshness"} <= queries
    reply = client.request("/pulse/freshness.json", "_shape=objects")
    assert reply.status == 200
    rows = reply.json()["rows"]
    assert rows[0]["source"] == "overall"
    assert len(rows) == len(data["freshness"]) and rows[0]["published_at"]


def test_facets(world):
    _, client, _ = world
    body = client.request("/pulse/forage_submissions_over_time.json").json()
    facet = body["facet_results"]["granularity"]["results"]
    assert {f["value"]: f["count"] for f in facet} == {"hour": 24, "minute": 60}
