"""End to end from dbt: the real marts built on the real PISA rows, published, served.

End to end through a real dbt build of every mart.
"""

from __future__ import annotations

import uuid

import psycopg2
import pytest

from pisa_pulse.loader.raw_fixture import create_raw_schema, insert_pool_rows, pool_rows
from pisa_pulse.serving.app import make_datasette
from pisa_pulse.serving.publisher import TABLES, Publisher
from tests.support.databases import create_database
from tests.support.dbt_indices_world import make_world
from tests.support.serving_marts import Client


@pytest.fixture(scope="module")
def served(pg_server, tmp_path_factory):
    url = create_database(pg_server, f"serving_dbt_{uuid.uuid4().hex[:8]}")
    tmp = tmp_path_factory.mktemp("serving_dbt")
    world = make_world(url, tmp)
    conn = psycopg2.connect(url)
    create_raw_schema(conn)
    insert_pool_rows(conn, [dict(r, _id=i + 1) for i, r in enumerate(pool_rows())])
    with conn.cursor() as cur:
        cur.execute(
            "insert into raw.loader_sources (cnt, status, rows_loaded, last_polled_at)"
            " select cnt, 'ok', count(*), now() from raw.responses group by cnt"
        )
    conn.commit()
    conn.close()
    world.dbt("seed")
    world.dbt("run", "--select", "+marts")
    with Publisher(url, tmp / "pulse.db") as pub:
        assert pub.publish_once()
    client = Client(make_datasette(tmp / "pulse.db"))
    yield world, client
    client.close()


def test_every_mart_is_published(served):
    world, client = served
    tables = {t["name"] for t in client.request("/pulse.json").json()["tables"]}
    assert set(TABLES) <= tables


def test_endpoints_agree_with_the_warehouse(served):
    world, client = served
    raw_count = world.query("select count(*) as n from raw.responses")[0]["n"]
    assert client.request("/forage/submissions").json() == {"count": raw_count}
    escs = {
        r["country"]: round(r["value"], 3)
        for r in world.query("select * from marts.forage_escs where value is not null")
    }
    body = client.request("/forage/escs").json()
    assert {d["id"]: d["value"] for d in body["datasets"]} == escs
    assert set(escs) == {"FRA", "ITA", "MEX"}
    for chart in ("learning_hours_per_week", "early_education_and_belonging"):
        assert client.request(f"/forage/{chart}", "countries=ITA").status == 200


def test_canned_queries_run_on_the_real_marts(served):
    _, client = served
    for query in ("country_profile?country=FRA", "reconciliation", "data_quality", "freshness"):
        path, _, params = query.partition("?")
        reply = client.request(f"/pulse/{path}.json", params)
        assert reply.status == 200, (query, reply.body[:300])
        assert reply.json()["rows"], query
