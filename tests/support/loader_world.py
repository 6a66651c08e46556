"""Helpers for the loader's tests: exact comparison of source and warehouse row sets."""

from __future__ import annotations

import contextlib

import psycopg2

from pisa_pulse.core.config import Settings
from pisa_pulse.sim import api as sim
from tests.support.databases import query


def source_keys(settings: Settings, countries: list[str]) -> set[tuple[str, int]]:
    keys = set()
    for cnt in countries:
        conn = psycopg2.connect(settings.source_url(cnt))
        try:
            with conn.cursor() as cur:
                cur.execute("select id from public.responses")
                keys |= {(cnt.upper(), i) for (i,) in cur.fetchall()}
        finally:
            conn.close()
    return keys


def warehouse_keys(settings: Settings) -> set[tuple[str, int]]:
    conn = psycopg2.connect(settings.warehouse_url)
    try:
        with conn.cursor() as cur:
            cur.execute("select cnt, id from raw.responses")
            return set(cur.fetchall())
    finally:
        conn.close()


def warehouse_query(settings: Settings, sql: str, params=None) -> list[tuple]:
    return query(settings.warehouse_url, sql, params)


@contextlib.contextmanager
def simulated_sources(pulse_env: Settings, countries: list[str]):
    """The simulator's databases for `countries`, the settings pointed at them, dropped after."""
    pulse_env.sources = list(countries)
    sim.setup_databases(pulse_env, countries)
    try:
        yield pulse_env
    finally:
        sim.drop_databases(pulse_env, countries)


def source_execute(settings: Settings, cnt: str, sql: str, params=None) -> None:
    conn = psycopg2.connect(settings.source_url(cnt))
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql, params)
    finally:
        conn.close()


def assert_same_rows(settings: Settings, countries: list[str]) -> int:
    """(cnt, id) both ways, and no duplicates; returns the row count."""
    src = source_keys(settings, countries)
    wh = warehouse_keys(settings)
    assert not (src - wh), f"missing in the warehouse: {sorted(src - wh)[:10]}"
    assert not (wh - src), f"extra in the warehouse: {sorted(wh - src)[:10]}"
    (n,) = warehouse_query(settings, "select count(*) from raw.responses")[0]
    assert n == len(src)
    return n
