"""The simulator's control database: unique id blocks and the channel to a running stream.

One database on the source server, `settings.source_database("pulse_sim")`
(`pulse_sim`, or `<prefix>_pulse_sim` in tests), holds:

- sequence `id_block`: every writer takes ids in blocks of ID_BLOCK from it, so ids
  are unique across databases, concurrent writers, processes and restarts;
- table `control` (one row): the rate and pause switch that `pulse sim rate/pause/resume`
  set and a running stream polls;
- table `stream_status` (one row per running stream, by pid): what the stream reports
  every second (rows committed, current rate, paused, heartbeat).
"""

from __future__ import annotations

import json
import os
import random
import threading

import psycopg2
import psycopg2.errors

CONTROL_NAME = "pulse_sim"
ID_BLOCK = 1024

DDL = """
create sequence if not exists id_block start with 1;
create table if not exists control (
    singleton boolean primary key default true check (singleton),
    rate double precision,
    paused boolean not null default false,
    updated_at timestamptz not null default now()
);
insert into control (singleton) values (true) on conflict do nothing;
create table if not exists stream_status (
    pid integer primary key,
    host text,
    started_at timestamptz not null default now(),
    heartbeat_at timestamptz not null default now(),
    stats jsonb not null
);
"""


def control_url(settings) -> str:
    return settings.source_url(CONTROL_NAME)


def connect(url: str, autocommit: bool = False):
    conn = psycopg2.connect(url, application_name="pulse-sim")
    conn.autocommit = autocommit
    return conn


def create_database(settings, name: str) -> bool:
    """Create a database on the source server unless it exists; True if created."""
    conn = connect(settings.admin_url, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("select 1 from pg_database where datname = %s", (name,))
            if cur.fetchone():
                return False
            try:
                cur.execute(f'create database "{name}"')
            except (psycopg2.errors.DuplicateDatabase, psycopg2.errors.UniqueViolation):
                return False  # created concurrently by someone else
            return True
    finally:
        conn.close()


def drop_database(settings, name: str) -> None:
    conn = connect(settings.admin_url, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(f'drop database if exists "{name}" with (force)')
    finally:
        conn.close()


_ensured: set[str] = set()
_ensure_lock = threading.Lock()


def ensure(settings) -> str:
    """Create the control database and its objects if needed; returns its URL."""
    url = control_url(settings)
    with _ensure_lock:
        if url in _ensured:
            return url
        create_database(settings, settings.source_database(CONTROL_NAME))
        conn = connect(url, autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute("select pg_advisory_lock(72817)")  # DDL by one process at a time
                cur.execute(DDL)
                cur.execute("select pg_advisory_unlock(72817)")
        finally:
            conn.close()
        _ensured.add(url)
    return url


def forget(settings) -> None:
    """After the control database was dropped: create it again when next needed."""
    with _ensure_lock:
        _ensured.discard(control_url(settings))


class IdAllocator:
    """Unique ids in random order: blocks from the control sequence, shuffled. Thread-safe."""

    def __init__(self, settings, rng: random.Random | None = None):
        self.url = ensure(settings)
        self.rng = rng or random.Random()
        self._ids: list[int] = []
        self._lock = threading.Lock()
        self._conn = None

    def take(self, n: int) -> list[int]:
        with self._lock:
            if len(self._ids) < n:
                self._refill(n - len(self._ids))
            out, self._ids = self._ids[:n], self._ids[n:]
            return out

    def _refill(self, needed: int) -> None:
        blocks = -(-needed // ID_BLOCK)
        if self._conn is None or self._conn.closed:
            self._conn = connect(self.url, autocommit=True)
        with self._conn.cursor() as cur:
            cur.execute("select nextval('id_block') from generate_series(1, %s)", (blocks,))
            fresh = [b * ID_BLOCK + i for (b,) in cur.fetchall() for i in range(ID_BLOCK)]
        self.rng.shuffle(fresh)
        self._ids.extend(fresh)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def set_control(settings, *, rate: float | None = None, paused: bool | None = None) -> None:
    conn = connect(ensure(settings), autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "update control set rate = coalesce(%s, rate), paused = coalesce(%s, paused),"
                " updated_at = now()",
                (rate, paused),
            )
    finally:
        conn.close()


def read_control(conn) -> tuple[float | None, bool]:
    with conn.cursor() as cur:
        cur.execute("select rate, paused from control")
        rate, paused = cur.fetchone()
    return rate, paused


def write_status(conn, stats: dict) -> None:
    with conn.cursor() as cur:
        cur.execute(
            "insert into stream_status (pid, host, stats) values (%s, %s, %s)"
            " on conflict (pid) do update set heartbeat_at = now(), stats = excluded.stats",
            (os.getpid(), os.uname().nodename, json.dumps(stats)),
        )


def clear_status(conn) -> None:
    with conn.cursor() as cur:
        cur.execute("delete from stream_status where pid = %s", (os.getpid(),))


def read_streams(settings) -> list[dict]:
    """Streams that reported in the last 5 seconds."""
    conn = connect(ensure(settings), autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "select pid, host, started_at, heartbeat_at, stats from stream_status"
                " where heartbeat_at > now() - interval '5 seconds' order by pid"
            )
            return [
                {
                    "pid": pid,
                    "host": host,
                    "started_at": started.isoformat(),
                    "heartbeat_at": beat.isoformat(),
                    **stats,
                }
                for pid, host, started, beat, stats in cur.fetchall()
            ]
    finally:
        conn.close()
