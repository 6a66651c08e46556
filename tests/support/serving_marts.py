"""Test data for the serving tests: `marts.*` tables with exactly the documented columns.

The real marts are dbt views (docs/contracts.md); here they are created by hand so the
publisher and the plugin can be tested on their own. Values are random per test run; tests
derive what they expect from the rows written, never from constants. `Client` calls the real
Datasette ASGI app in process (raw query-string bytes, no HTTP client normalising them).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
import sqlite3
from dataclasses import dataclass

import psycopg2

from pisa_pulse.serving import catalog

# `freshness` has no contract: the columns the serving side reads.
FRESHNESS_DDL = "create table marts.freshness (source text, lag_ms bigint, status text);"


def forage_ddl() -> str:
    """The Forage views as tables, column for column as their enforced dbt contracts declare
    them (the manifest, the one owner: serving/catalog.py), and `freshness`."""
    manifest = json.loads(catalog.ensure_manifest().read_text())
    models = {n["name"]: n for n in manifest["nodes"].values() if n["resource_type"] == "model"}
    parts = ["create schema if not exists marts;"]
    for name in catalog.from_manifest(manifest).charts().values():
        declared = models[name]["columns"].values()
        columns = ", ".join(f"{c['name']} {c['data_type']}" for c in declared)
        parts.append(f"create table marts.{name} ({columns});")
    return "\n".join([*parts, FRESHNESS_DDL])


COUNTRIES = ("FRA", "ITA", "MEX", "GBR", "ESP")
NULL_COUNTRY = "ESP"  # has submissions but no valid index values: omitted from the charts


def random_marts(
    seed: int | None = None, countries=COUNTRIES, outliers: dict | None = None
) -> dict[str, list[tuple]]:
    """Random marts for `countries`; `outliers` forces values, e.g. {"QAT": {"hours": 80}}
    (keys `hours`, `escs`, `durecec`, `belong`)."""
    rnd = random.Random(seed)
    outliers = outliers or {}
    per_country = {c: rnd.randint(1, 500) for c in countries}
    now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    hours = [now.replace(minute=0) - dt.timedelta(hours=h) for h in range(23, -1, -1)]
    minutes = [now - dt.timedelta(minutes=m) for m in range(59, -1, -1)]
    over_time = [("hour", t, t.strftime("%H:%M"), rnd.randint(0, 300)) for t in hours] + [
        ("minute", t, t.strftime("%H:%M"), rnd.randint(0, 20)) for t in minutes
    ]
    learning, escs, early = [], [], []
    for c, n in per_country.items():
        if c == NULL_COUNTRY:
            learning.append((c, None, None, 0, True))
            escs.append((c, None, 0, True, False))
            early.append((c, None, None, n, True))
            continue
        forced = outliers.get(c, {})
        tmins = forced.get("hours", rnd.uniform(1200, 2000) / 60) * 60
        learning.append((c, round(tmins / 60), tmins, n, True))
        escs.append((c, forced.get("escs", rnd.uniform(-1.5, 0.8)), n, True, False))
        durecec = forced.get("durecec", rnd.uniform(1, 4))
        early.append((c, durecec, forced.get("belong", rnd.uniform(-0.5, 0.5)), n, True))
    return {
        "forage_submissions": [(sum(per_country.values()),)],
        "forage_submissions_over_time": over_time,
        "forage_learning_hours": learning,
        "forage_escs": escs,
        "forage_early_education_belonging": early,
        "freshness": [(c, rnd.randint(0, 900), "ok") for c in per_country]
        + [("overall", 900, "ok")],
    }


def create_marts(warehouse_url: str, data: dict[str, list[tuple]]) -> None:
    conn = psycopg2.connect(warehouse_url)
    with conn, conn.cursor() as cur:
        cur.execute(forage_ddl())
        write_marts(cur, data)
    conn.close()


def write_marts(cur, data: dict[str, list[tuple]]) -> None:
    for table, rows in data.items():
        cur.execute(f"delete from marts.{table}")
        for row in rows:
            marks = ", ".join(["%s"] * len(row))
            cur.execute(f"insert into marts.{table} values ({marks})", row)


def execute(warehouse_url: str, sql: str, params=None) -> None:
    conn = psycopg2.connect(warehouse_url)
    with conn, conn.cursor() as cur:
        cur.execute(sql, params)
    conn.close()


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


class Client:
    """Calls the ASGI app on one event loop (Datasette binds its executor to it)."""

    def __init__(self, ds):
        self.ds = ds
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(ds.invoke_startup())
        self.app = ds.app()

    def request(self, path: str, query: bytes | str = b"", method: str = "GET") -> Reply:
        if isinstance(query, str):
            query = query.encode()
        return self.loop.run_until_complete(self._call(method, path, query))

    async def _call(self, method, path, query):
        scope = {
            "type": "http",
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query,
            "root_path": "",
            "headers": [(b"host", b"localhost"), (b"origin", b"https://forage.example")],
            "client": ("127.0.0.1", 1234),
            "server": ("localhost", 80),
        }
        sent = []

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            sent.append(message)

        await self.app(scope, receive, send)
        start = next(m for m in sent if m["type"] == "http.response.start")
        headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
        body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        return Reply(start["status"], headers, body)

    def close(self):
        self.loop.close()


def digest(path) -> list:
    conn = sqlite3.connect(path)
    tables = [r[0] for r in conn.execute("select name from sqlite_master where type='table'")]
    rows = [(t, sorted(conn.execute(f'select * from "{t}"').fetchall(), key=repr)) for t in tables]
    conn.close()
    return rows
