"""Databases on the test server (the session's `pg_server` fixture, tests/conftest.py)."""

from __future__ import annotations

import psycopg2


def create_database(server: str, name: str) -> str:
    conn = psycopg2.connect(f"{server}/postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'drop database if exists "{name}" with (force)')
        cur.execute(f'create database "{name}"')
    conn.close()
    return f"{server}/{name}"


def query(url: str, sql: str, params=None) -> list[tuple]:
    """Run one statement on its own connection and return its rows."""
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()
    finally:
        conn.close()
