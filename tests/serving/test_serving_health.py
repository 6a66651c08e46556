"""How fresh the served data are: the /forage/* age headers and the health URL.

Real marts in a real warehouse, the real publisher, the real Datasette app; staleness is made
by really waiting, really lagging sources (the freshness mart) or a real dbt backlog.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
import uuid
from email.utils import parsedate_to_datetime
from importlib.metadata import version

import pytest

from pisa_pulse.core import config
from pisa_pulse.ops.status import collect
from pisa_pulse.serving.app import make_datasette
from pisa_pulse.serving.forage_plugin import (
    CHARTS,
)  # the served charts (the endpoint tests pin the five)
from pisa_pulse.serving.health import ENV_BACKLOG, ENV_PUBLICATION_AGE, ENV_SOURCE_LAG
from pisa_pulse.serving.publisher import Publisher
from tests.support.databases import create_database
from tests.support.serving_marts import Client, create_marts, execute, random_marts

HEALTH = "/-/pulse-health"


@pytest.fixture
def stack(pg_server, tmp_path):
    """A fresh warehouse with marts, a publisher and a Datasette app over its SQLite file."""
    url = create_database(pg_server, f"serving_health_{uuid.uuid4().hex[:8]}")
    data = random_marts()
    create_marts(url, data)
    path = tmp_path / "pulse.db"
    publisher = Publisher(url, path)
    clients = []

    def client() -> Client:
        clients.append(Client(make_datasette(path)))
        return clients[-1]

    yield url, data, publisher, client
    for c in clients:
        c.close()
    publisher.close()


def published_at(publisher) -> dt.datetime:
    (value,) = publisher._sqlite.execute("select published_at from publication").fetchone()
    return dt.datetime.fromisoformat(value)


def overall_lag_s(data) -> float:
    return next(lag for source, lag, _ in data["freshness"] if source == "overall") / 1000


def test_every_forage_answer_says_which_publication_and_how_old(stack):
    _, data, publisher, client = stack
    assert publisher.publish_once()
    client = client()
    when = published_at(publisher)
    for chart in CHARTS:
        before = time.time()
        reply = client.request(f"/forage/{chart}")
        after = time.time()
        assert reply.status == 200
        assert reply.headers["x-pulse-published-at"] == when.isoformat(timespec="milliseconds")
        # HTTP dates have one-second resolution.
        assert parsedate_to_datetime(reply.headers["last-modified"]) == when.replace(microsecond=0)
        # The age: the sources' lag at publication (the freshness mart) + the time since.
        age = float(reply.headers["x-pulse-data-age"])
        lag = overall_lag_s(data)
        # (published_at is to the millisecond, the header too: 2 ms of slack.)
        low, high = before - when.timestamp() + lag, after - when.timestamp() + lag
        assert low - 0.002 <= age <= high + 0.002
        exposed = reply.headers["access-control-expose-headers"].lower()
        assert "x-pulse-data-age" in exposed and "last-modified" in exposed
    # The same publication answered later is older by the time elapsed (the body is cached,
    # the age is not).
    first = float(client.request("/forage/escs").headers["x-pulse-data-age"])
    time.sleep(0.3)
    second = float(client.request("/forage/escs").headers["x-pulse-data-age"])
    assert second - first >= 0.29
    # A new publication moves Last-Modified.
    execute(stack[0], "update marts.forage_submissions set count = count + 1")
    time.sleep(1.0)  # Last-Modified counts whole seconds
    assert publisher.publish_once()
    reply = client.request("/forage/submissions")
    assert reply.headers["x-pulse-published-at"] == published_at(publisher).isoformat(
        timespec="milliseconds"
    )
    assert parsedate_to_datetime(reply.headers["last-modified"]) > when.replace(microsecond=0)


def test_health_is_200_while_fresh_and_503_with_the_reason_when_the_publisher_stops(
    stack, monkeypatch
):
    url, data, publisher, client = stack
    monkeypatch.setenv(ENV_PUBLICATION_AGE, "1.5")
    assert publisher.publish_once()
    client = client()
    reply = client.request(HEALTH)
    assert reply.status == 200, reply.body
    body = reply.json()
    assert body["status"] == "fresh" and body["reasons"] == []
    assert body["thresholds"][ENV_PUBLICATION_AGE] == 1.5
    assert body["published_at"] == published_at(publisher).isoformat(timespec="milliseconds")
    assert 0 <= body["publication_age_s"] < 1.5
    assert body["data_age_s"] == pytest.approx(body["publication_age_s"] + overall_lag_s(data))
    assert reply.headers["cache-control"] == "no-store"
    assert reply.headers["access-control-allow-origin"] == "*"

    time.sleep(1.7)  # no publication for longer than the limit
    reply = client.request(HEALTH)
    assert reply.status == 503
    body = reply.json()
    assert body["status"] == "stale"
    assert [r["component"] for r in body["reasons"]] == ["publisher"]
    assert "no publication for" in body["reasons"][0]["message"]
    assert body["publication_age_s"] > 1.5
    # HEAD answers the same status with no body (load balancers' checks).
    head = client.request(HEALTH, method="HEAD")
    assert head.status == 503 and head.body == b""

    execute(url, "update marts.forage_submissions set count = count + 1")
    assert publisher.publish_once()
    assert client.request(HEALTH).status == 200


def test_health_names_a_lagging_source_and_a_stopped_loader(stack, monkeypatch):
    url, data, publisher, client = stack
    monkeypatch.setenv(ENV_SOURCE_LAG, "30")
    sources = [s for s, *_ in data["freshness"] if s != "overall"]
    execute(url, "update marts.freshness set lag_ms = 45000 where source = %s", (sources[0],))
    execute(url, "update marts.freshness set lag_ms = 45000 where source = 'overall'")
    assert publisher.publish_once()
    client = client()
    reply = client.request(HEALTH)
    assert reply.status == 503
    reasons = reply.json()["reasons"]
    assert [(r["component"], r.get("source")) for r in reasons] == [("source", sources[0])]
    assert "45.0 s" in reasons[0]["message"]
    # The age header tells the same: the worst source's lag is part of the data's age.
    assert float(client.request("/forage/escs").headers["x-pulse-data-age"]) >= 45

    # Every source behind: the loader (the loop's first step) is not reading at all.
    execute(url, "update marts.freshness set lag_ms = 45000")
    assert publisher.publish_once()
    reasons = client.request(HEALTH).json()["reasons"]
    assert [r["component"] for r in reasons] == ["loop"]
    assert f"none of the {len(sources)} sources" in reasons[0]["message"]

    execute(url, "update marts.freshness set lag_ms = 100")
    assert publisher.publish_once()
    assert client.request(HEALTH).status == 200


def test_health_reports_a_dbt_backlog(stack, monkeypatch):
    url, _, publisher, client = stack
    monkeypatch.setenv(ENV_BACKLOG, "5000")
    execute(url, "alter table marts.freshness add column tail_rows bigint")
    execute(url, "update marts.freshness set tail_rows = 4000 where source = 'overall'")
    assert publisher.publish_once()
    client = client()
    assert client.request(HEALTH).json()["backlog_rows"] == 4000
    assert client.request(HEALTH).status == 200
    execute(url, "update marts.freshness set tail_rows = 6000 where source = 'overall'")
    assert publisher.publish_once()
    reply = client.request(HEALTH)
    assert reply.status == 503
    (reason,) = reply.json()["reasons"]
    assert reason["component"] == "loop" and "6,000 rows" in reason["message"]


def test_before_the_first_publication_health_says_waiting(tmp_path):
    client = Client(make_datasette(tmp_path / "empty.db"))
    try:
        reply = client.request(HEALTH)
        assert reply.status == 503
        body = reply.json()
        assert body["status"] == "waiting"
        assert body["reasons"][0]["message"] == "waiting for the first publication"
        chart = client.request("/forage/escs")
        assert chart.status == 503 and "not published yet" in chart.json()["error"]
        assert "x-pulse-data-age" not in chart.headers
    finally:
        client.close()


@pytest.mark.parametrize("value", ["soon", "-1", "0"])
def test_a_bad_threshold_stops_the_start(tmp_path, monkeypatch, value):
    monkeypatch.setenv(ENV_PUBLICATION_AGE, value)
    with pytest.raises(ValueError, match=ENV_PUBLICATION_AGE):
        make_datasette(tmp_path / "pulse.db")


def test_pulse_status_lists_the_health_url(tmp_path, monkeypatch):
    monkeypatch.setenv("PULSE_HOME", str(tmp_path))
    config.write_state(datasette_url="http://127.0.0.1:8123")
    info = json.loads(json.dumps(collect()))
    assert info["health_url"] == "http://127.0.0.1:8123/-/pulse-health"


def test_pulse_version_is_the_package_version():
    """`pulse --version` (docs/cli.md) prints the installed package's version, exit 0."""
    done = subprocess.run(
        [sys.executable, "-m", "pisa_pulse.cli", "--version"], capture_output=True, text=True
    )
    assert done.returncode == 0
    assert done.stdout.strip() == f"pulse {version('pisa-pulse')}"
