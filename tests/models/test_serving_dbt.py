"""End to end from dbt: the real marts built on the real PISA rows, published, served.

End to end through a real dbt build of every mart.
"""

from __future__ import annotations

import uuid

import psycopg2
import pytest

from pisa_pulse.loader.raw_fixture import create_raw_schema, insert_pool_rows, pool_rows
from pisa_pulse.serving import catalog
from pisa_pulse.serving.app import make_datasette
from pisa_pulse.serving.publisher import Publisher
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
    # The slow job's snapshot of country_profile (selector `slow` takes it), published with
    # the analyst marts.
    world.dbt("snapshot", "--select", "country_profile_history")
    with Publisher(url, tmp / "pulse.db") as pub:
        assert pub.publish_once()
    client = Client(make_datasette(tmp / "pulse.db"))
    yield world, client, tmp / "pulse.db"
    client.close()


def test_every_mart_is_published(served):
    world, client, _ = served
    tables = {t["name"] for t in client.request("/pulse.json").json()["tables"]}
    assert set(catalog.load().names()) <= tables


def test_endpoints_agree_with_the_warehouse(served):
    world, client, _ = served
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
    _, client, _ = served
    for query in ("country_profile?country=FRA", "reconciliation", "data_quality", "freshness"):
        path, _, params = query.partition("?")
        reply = client.request(f"/pulse/{path}.json", params)
        assert reply.status == 200, (query, reply.body[:300])
        assert reply.json()["rows"], query


def _history(client, *params: str) -> list[dict]:
    reply = client.request(
        "/pulse/country_profile_history.json", "&".join(("_shape=objects", *params))
    )
    assert reply.status == 200, reply.body[:300]
    return reply.json()["rows"]


def test_the_snapshot_is_browsable_in_datasette(served):
    world, client, _ = served
    warehouse = world.query("select * from snapshots.country_profile_history order by country")
    assert {r["country"] for r in warehouse} == {"FRA", "ITA", "MEX"}
    rows = _history(client, "_sort=country")
    assert [r["country"] for r in rows] == [r["country"] for r in warehouse]
    for got, want in zip(rows, warehouse, strict=True):
        assert got["submissions"] == want["submissions"]
        assert got["escs_mean"] == pytest.approx(float(want["escs_mean"]))
        assert got["dbt_valid_to"] is None and got["dbt_valid_from"]
    page = client.request("/pulse/country_profile_history.json").json()
    # The default sort, from meta.served.
    assert "sorted by dbt_valid_from descending" in page["human_description_en"]
    assert "country" in page["facet_results"]
    meta = client.request("/-/metadata.json").json()["databases"]["pulse"]["tables"]
    assert meta["country_profile_history"]["title"] == "Country profiles over time"
    assert "dbt_valid_from" in meta["country_profile_history"]["columns"]
    html = client.request("/country/FRA").body.decode()
    assert "/pulse/country_profile_history?country=FRA" in html


def test_a_new_version_reaches_datasette_by_the_slow_publication(served):
    """More rows for FRA, the snapshot again, the loop's publisher: FRA has two versions."""
    from pisa_pulse.realtime.publishing import SplitPublisher

    world, client, path = served
    before = {r["country"]: r for r in _history(client)}
    conn = psycopg2.connect(world.url)
    fra = [r for r in pool_rows() if r["CNT"] == "FRA"][:5]
    insert_pool_rows(conn, [dict(r, _id=1_000_000 + i) for i, r in enumerate(fra)])
    conn.close()
    world.dbt("snapshot", "--select", "country_profile_history")
    publisher = SplitPublisher(world.url, path, slow_interval=0.0)
    try:
        assert "country_profile_history" in publisher.slow.tables
        assert "country_profile_history" not in publisher.fast.tables
        assert publisher.publish_once()
    finally:
        publisher.close()
    versions = _history(client, "country=FRA", "_sort=dbt_valid_from")
    assert len(versions) == 2
    old, new = versions
    assert old["submissions"] == before["FRA"]["submissions"]
    assert new["submissions"] == old["submissions"] + len(fra)
    assert old["dbt_valid_to"] == new["dbt_valid_from"] and new["dbt_valid_to"] is None
    assert len(_history(client, "country=ITA")) == 1
    # By default newest first (meta.served.sort_desc).
    assert _history(client, "country=FRA")[0]["dbt_valid_from"] == new["dbt_valid_from"]
