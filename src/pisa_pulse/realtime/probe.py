"""Watching the system from outside: source counts, what Forage is served, waiting for it."""

from __future__ import annotations

import json
import sqlite3
import time
import urllib.request
from pathlib import Path

import psycopg2


def source_total(settings, countries: list[str]) -> int:
    """Rows in the application databases now (one count(*) per country)."""
    total = 0
    for cnt in countries:
        conn = psycopg2.connect(settings.source_url(cnt), connect_timeout=5)
        try:
            with conn.cursor() as cur:
                cur.execute("select count(*) from public.responses")
                total += cur.fetchone()[0]
        finally:
            conn.close()
    return total


def served_sqlite(sqlite_path: Path | str, table: str) -> list[tuple]:
    """Rows of a published table (empty when the file or table is not there yet)."""
    try:
        db = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True, timeout=5)
    except sqlite3.OperationalError:
        return []
    try:
        return db.execute(f'select * from "{table}"').fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        db.close()


def served_count(sqlite_path: Path | str) -> int | None:
    rows = served_sqlite(sqlite_path, "forage_submissions")
    return int(rows[0][0]) if rows and rows[0][0] is not None else None


def forage_json(base_url: str, chart: str, timeout: float = 5.0) -> dict:
    with urllib.request.urlopen(f"{base_url.rstrip('/')}/forage/{chart}", timeout=timeout) as r:
        return json.load(r)


def wait_for(predicate, timeout: float, interval: float = 0.05) -> float | None:
    """Seconds until predicate() was true, or None after `timeout`."""
    started = time.monotonic()
    while True:
        try:
            if predicate():
                return time.monotonic() - started
        except Exception:  # a server restarting, a file being created…
            pass
        if time.monotonic() - started > timeout:
            return None
        time.sleep(interval)
