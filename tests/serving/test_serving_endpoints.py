"""Forage's endpoints through the real Datasette app: shapes, types, countries, headers, 400s.

Requests go straight to Datasette's ASGI app (raw query-string bytes, no HTTP client
normalising them); the data come from real marts in a real warehouse via the publisher.
"""

from __future__ import annotations

import json
import random
import sqlite3
import uuid
from urllib.parse import quote

import pytest

from pisa_pulse.serving.app import make_datasette
from pisa_pulse.serving.publisher import Publisher
from tests.support.databases import create_database
from tests.support.serving_marts import NULL_COUNTRY, Client, create_marts, digest, random_marts

COUNTRY_CHARTS = ("learning_hours_per_week", "escs", "early_education_and_belonging")
ALL_CHARTS = ("submissions", "submissions_over_time", *COUNTRY_CHARTS)


@pytest.fixture(scope="module")
def world(pg_server, tmp_path_factory):
    url = create_database(pg_server, f"serving_ep_{uuid.uuid4().hex[:8]}")
    data = random_marts()
    create_marts(url, data)
    path = tmp_path_factory.mktemp("serving") / "pulse.db"
    with Publisher(url, path) as pub:
        assert pub.publish_once()
    client = Client(make_datasette(path))
    yield data, client, path
    client.close()


def test_submissions_is_the_published_count_as_an_integer(world):
    data, client, _ = world
    reply = client.request("/forage/submissions")
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("application/json")
    body = reply.json()
    assert body == {"count": data["forage_submissions"][0][0]}
    assert type(body["count"]) is int


@pytest.mark.parametrize("granularity", ["hour", "minute"])
def test_submissions_over_time_shape(world, granularity):
    data, client, _ = world
    query = "" if granularity == "hour" else "granularity=minute"
    body = client.request("/forage/submissions_over_time", query).json()
    rows = [r for r in data["forage_submissions_over_time"] if r[0] == granularity]
    rows.sort(key=lambda r: r[1])
    assert list(body) == ["datasets"] and len(body["datasets"]) == 1
    dataset = body["datasets"][0]
    assert dataset["id"] == "Submissions"
    assert dataset["data"] == [{"x": label, "y": n} for _, _, label, n in rows]
    assert all(type(p["x"]) is str and type(p["y"]) is int for p in dataset["data"])
    assert len(dataset["data"]) == (24 if granularity == "hour" else 60)


def test_learning_hours_shape(world):
    data, client, _ = world
    body = client.request("/forage/learning_hours_per_week").json()
    want = sorted(
        ({"country": c, "hours": h} for c, h, *_ in data["forage_learning_hours"] if h is not None),
        key=lambda d: d["country"],
    )
    assert body == {"datasets": want}
    assert all(type(d["hours"]) is int for d in body["datasets"])
    assert NULL_COUNTRY not in {d["country"] for d in body["datasets"]}


def test_escs_shape_rounded_to_three_decimals(world):
    data, client, _ = world
    body = client.request("/forage/escs").json()
    want = {c: round(v, 3) for c, v, *_ in data["forage_escs"] if v is not None}
    assert {d["id"]: d["value"] for d in body["datasets"]} == want
    assert all(set(d) == {"id", "value"} and type(d["value"]) is float for d in body["datasets"])
    assert NULL_COUNTRY not in {d["id"] for d in body["datasets"]}


def test_early_education_and_belonging_shape(world):
    data, client, _ = world
    body = client.request("/forage/early_education_and_belonging").json()
    want = {
        c: [{"x": round(x, 2), "y": round(y, 3), "submissions": n}]
        for c, x, y, n, _ in data["forage_early_education_belonging"]
        if x is not None and y is not None
    }
    assert {d["id"]: d["data"] for d in body["datasets"]} == want
    for d in body["datasets"]:
        point = d["data"][0]
        assert type(point["x"]) is float and type(point["y"]) is float
        assert type(point["submissions"]) is int
    assert [d["id"] for d in body["datasets"]] == sorted(want)


@pytest.mark.parametrize("chart", COUNTRY_CHARTS)
@pytest.mark.parametrize(
    "query, expect",
    [
        ("", "all"),
        ("countries=", "all"),
        ("countries=FRA", {"FRA"}),
        ("countries=FRA,MEX", {"FRA", "MEX"}),
        ("countries=FRA%2CMEX", {"FRA", "MEX"}),  # an encoded comma is still a comma
        ("countries=FRA,ZZZ", {"FRA"}),  # unknown codes are simply absent
        ("countries=ZZZ", set()),
        ("countries=fra,Ita", {"FRA", "ITA"}),  # documented: codes are case-insensitive
        ("countries=FRA,FRA", {"FRA"}),
        (f"countries={NULL_COUNTRY}", set()),  # no value: omitted
        ("countries=FRA&other=1", {"FRA"}),  # unknown parameters are ignored
    ],
)
def test_countries_filter(world, chart, query, expect):
    data, client, _ = world
    reply = client.request(f"/forage/{chart}", query)
    assert reply.status == 200, reply.body
    key = "country" if chart == "learning_hours_per_week" else "id"
    got = {d[key] for d in reply.json()["datasets"]}
    if expect == "all":
        expect = {c for c, v, *_ in data["forage_escs"] if v is not None}
    assert got == expect


@pytest.mark.parametrize("chart", COUNTRY_CHARTS)
@pytest.mark.parametrize(
    "query",
    [
        "countries=FR",
        "countries=FRAN",
        "countries=FRA,",
        "countries=,FRA",
        "countries=FRA,,ITA",
        "countries=FRA ITA",
        "countries=FRA;ITA",
        "countries=F1A",
        "countries=%C3%89TA",
        "countries='; drop table forage_escs; --",
        "countries=FRA&countries=ITA",
        "countries=" + ",".join(["FRA"] * 1000),
    ],
)
def test_malformed_countries_is_a_400_with_a_json_error(world, chart, query):
    _, client, _ = world
    reply = client.request(f"/forage/{chart}", query)
    assert reply.status == 400
    assert reply.headers["content-type"].startswith("application/json")
    assert isinstance(reply.json()["error"], str) and reply.json()["error"]
    assert reply.headers["access-control-allow-origin"] == "*"


@pytest.mark.parametrize("query", ["granularity=day", "granularity=HOUR", "granularity=h&x=1"])
def test_bad_granularity_is_a_400(world, query):
    _, client, _ = world
    reply = client.request("/forage/submissions_over_time", query)
    assert reply.status == 400 and "granularity" in reply.json()["error"]


@pytest.mark.parametrize(
    "path", [*(f"/forage/{c}" for c in ALL_CHARTS), "/forage/", "/dashboard", "/pulse.json", "/"]
)
def test_every_response_has_cors_and_no_caching_beyond_one_second(world, path):
    _, client, _ = world
    reply = client.request(path)
    assert reply.status == 200
    assert reply.headers["access-control-allow-origin"] == "*"
    assert "GET" in reply.headers["access-control-allow-methods"]
    cache = reply.headers["cache-control"]
    assert "no-store" in cache or "no-cache" in cache or cache in ("max-age=0", "max-age=1")


@pytest.mark.parametrize("path", [f"/forage/{c}" for c in ALL_CHARTS])
def test_options_preflight(world, path):
    _, client, _ = world
    reply = client.request(path, method="OPTIONS")
    assert reply.status == 204
    assert reply.headers["access-control-allow-origin"] == "*"
    assert "GET" in reply.headers["access-control-allow-methods"]


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_forage_routes_refuse_writes(world, method):
    _, client, path = world
    before = digest(path)
    reply = client.request("/forage/submissions", method=method)
    assert reply.status == 405
    assert digest(path) == before


def test_unknown_chart_is_a_json_404(world):
    _, client, _ = world
    reply = client.request("/forage/nope")
    assert reply.status == 404 and "error" in reply.json()


def test_hostile_query_strings_never_500_and_never_touch_the_data(world):
    _, client, path = world
    before = digest(path)
    rnd = random.Random()
    hostile = [
        b"countries=FRA' OR '1'='1",
        b"countries=FRA%27%3B%20DROP%20TABLE%20forage_escs%3B--",
        b"countries=" + b"A" * 1_000_000,
        b"countries=FRA&" * 200,
        b"granularity=minute&granularity=hour",
        b"countries=%00%01%02",
        b"countries=%ff%fe",
        b"countries=\xff\xfe\x00",
        b"%%%%%%&&&===",
        b"countries[]=FRA",
        b"_sql=delete from forage_escs",
        b"sql=drop table forage_escs",
    ]
    hostile += [bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 300))) for _ in range(150)]
    hostile += [
        ("countries=" + quote("".join(chr(rnd.randint(1, 0x2FFF)) for _ in range(20)))).encode()
        for _ in range(50)
    ]
    for query in hostile:
        for chart in ALL_CHARTS:
            reply = client.request(f"/forage/{chart}", query)
            assert reply.status in (200, 400), (chart, query, reply.status, reply.body[:200])
            assert reply.headers["content-type"].startswith("application/json")
            json.loads(reply.body)
    assert digest(path) == before


def test_not_yet_published_is_a_503_not_a_500(tmp_path):
    client = Client(make_datasette(tmp_path / "empty.db"))
    try:
        reply = client.request("/forage/submissions")
        assert reply.status == 503 and "error" in reply.json()
        # Malformed is still malformed before a publication.
        assert client.request("/forage/escs", "countries=1").status == 400
    finally:
        client.close()


def test_answers_follow_a_new_publication(world, tmp_path):
    data, _, _ = world
    path = tmp_path / "live.db"
    conn = sqlite3.connect(path)
    conn.execute("pragma journal_mode=wal")
    conn.execute("create table forage_submissions (count INTEGER)")
    conn.execute("insert into forage_submissions values (1)")
    conn.commit()
    client = Client(make_datasette(path))
    try:
        assert client.request("/forage/submissions").json() == {"count": 1}
        for n in (2, 3, 1000):
            conn.execute("update forage_submissions set count = ?", (n,))
            conn.commit()
            assert client.request("/forage/submissions").json() == {"count": n}
    finally:
        client.close()
        conn.close()


def test_the_dashboards_country_names_are_the_codebooks(world):
    """serving/static/countries.json is generated from the codebook's CNT labels, never typed:
    regenerate it with `python -m pisa_pulse.serving.countries` if this fails."""
    from pisa_pulse.core import codebook
    from pisa_pulse.serving import countries

    assert countries.OUT.read_text(encoding="utf-8") == countries.render()
    _, client, _ = world
    reply = client.request("/-/pulse/countries.json")
    assert reply.status == 200 and reply.headers["content-type"].startswith("application/json")
    served = reply.json()
    assert served == codebook.country_names() and len(served) == 82
    assert served["QCI"] == "B-S-J-Z (China)" and served["TAP"] == "Chinese Taipei"
