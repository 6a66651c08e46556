"""Test data for the serving tests: `marts.*` tables with exactly the documented columns.

The real marts are dbt views (docs/contracts.md); here they are created by hand so the
publisher and the plugin can be tested on their own. Values are random per test run; tests
derive what they expect from the rows written, never from constants.
"""

from __future__ import annotations

import datetime as dt
import random

import psycopg2

DDL = """
create schema if not exists marts;
create table marts.forage_submissions (count bigint);
create table marts.forage_submissions_over_time (
    granularity text, bucket_start timestamptz, label text, submissions bigint);
create table marts.forage_learning_hours (
    country text, hours integer, tmins_mean double precision, n bigint, weighted boolean);
create table marts.forage_escs (country text, value double precision, n bigint, weighted boolean);
create table marts.forage_early_education_belonging (
    country text, durecec_mean double precision, belong_mean double precision,
    submissions bigint, weighted boolean);
create table marts.freshness (source text, lag_ms bigint, status text);
"""

COUNTRIES = ("FRA", "ITA", "MEX", "GBR", "ESP")
NULL_COUNTRY = "ESP"  # has submissions but no valid index values: omitted from the charts


def random_marts(seed: int | None = None) -> dict[str, list[tuple]]:
    rnd = random.Random(seed)
    per_country = {c: rnd.randint(1, 500) for c in COUNTRIES}
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
            escs.append((c, None, 0, True))
            early.append((c, None, None, n, True))
            continue
        tmins = rnd.uniform(1200, 2000)
        learning.append((c, round(tmins / 60), tmins, n, True))
        escs.append((c, rnd.uniform(-1.5, 0.8), n, True))
        early.append((c, rnd.uniform(1, 4), rnd.uniform(-0.5, 0.5), n, True))
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
        cur.execute(DDL)
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
