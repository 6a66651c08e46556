"""The publisher: warehouse marts → SQLite, in place, atomically, only when changed."""

from __future__ import annotations

import argparse
import os
import sqlite3
import threading
import time

import psycopg2
import pytest

from pisa_pulse.cli import serve as serving_cli
from pisa_pulse.serving.publisher import PUBLICATION_TABLE, Publisher
from tests.support.serving_marts import create_marts, execute, random_marts


@pytest.fixture
def warehouse(fresh_db):
    url = fresh_db("serving_pub")
    data = random_marts()
    create_marts(url, data)
    return url, data


@pytest.fixture
def publisher(warehouse, tmp_path):
    pub = Publisher(warehouse[0], tmp_path / "pulse.db")
    yield pub
    pub.close()


def sqlite_rows(path, table):
    conn = sqlite3.connect(path)
    try:
        return conn.execute(f"select * from {table}").fetchall()
    finally:
        conn.close()


def pg_rows(url, table):
    conn = psycopg2.connect(url)
    with conn.cursor() as cur:
        cur.execute(f"select * from marts.{table}")
        rows = cur.fetchall()
    conn.close()
    return rows


def test_publishes_every_existing_mart_with_its_values(warehouse, publisher):
    url, data = warehouse
    assert publisher.publish_once() is True
    path = publisher.sqlite_path
    conn = sqlite3.connect(path)
    tables = {r[0] for r in conn.execute("select name from sqlite_master where type = 'table'")}
    conn.close()
    # Every mart that exists is published; the analyst marts that don't exist are not invented.
    assert tables == set(data) | {PUBLICATION_TABLE}
    for table in data:
        got = sqlite_rows(path, table)
        want = pg_rows(url, table)
        assert len(got) == len(want)
    count = sqlite_rows(path, "forage_submissions")[0][0]
    assert count == data["forage_submissions"][0][0]
    assert isinstance(count, int)
    by_country = {r[0]: r for r in sqlite_rows(path, "forage_escs")}
    for country, value, n, weighted, _provisional in data["forage_escs"]:
        assert by_country[country][1] == value  # floats survive exactly (REAL = float8)
        assert by_country[country][2] == n
        assert by_country[country][3] == int(weighted)
    # Timestamps are ISO 8601 text in UTC, so they sort in time order.
    buckets = [r[1] for r in sqlite_rows(path, "forage_submissions_over_time") if r[0] == "hour"]
    assert buckets == sorted(buckets) and buckets[0].endswith("+00:00")


def test_column_types_follow_the_warehouse_types(publisher):
    publisher.publish_once()
    conn = sqlite3.connect(publisher.sqlite_path)
    types = {r[1]: r[2] for r in conn.execute("pragma table_info(forage_learning_hours)")}
    conn.close()
    assert types == {
        "country": "TEXT",
        "hours": "INTEGER",
        "tmins_mean": "REAL",
        "n": "INTEGER",
        "weighted": "INTEGER",
    }


def test_writes_only_when_something_changed(warehouse, publisher):
    url, data = warehouse
    assert publisher.publish_once() is True
    stamp = sqlite_rows(publisher.sqlite_path, PUBLICATION_TABLE)
    assert publisher.publish_once() is False
    assert publisher.publish_once() is False
    assert sqlite_rows(publisher.sqlite_path, PUBLICATION_TABLE) == stamp

    new_count = data["forage_submissions"][0][0] + 7
    execute(url, "update marts.forage_submissions set count = %s", (new_count,))
    assert publisher.publish_once() is True
    assert sqlite_rows(publisher.sqlite_path, "forage_submissions") == [(new_count,)]


def test_a_new_publisher_remembers_what_was_published(warehouse, tmp_path):
    with Publisher(warehouse[0], tmp_path / "p.db") as first:
        assert first.publish_once() is True
    with Publisher(warehouse[0], tmp_path / "p.db") as second:
        assert second.publish_once() is False


def test_updates_the_file_in_place_in_wal_mode(warehouse, publisher):
    url, data = warehouse
    publisher.publish_once()
    inode = os.stat(publisher.sqlite_path).st_ino
    execute(url, "update marts.forage_escs set value = value + 1")
    assert publisher.publish_once() is True
    assert os.stat(publisher.sqlite_path).st_ino == inode
    conn = sqlite3.connect(publisher.sqlite_path)
    assert conn.execute("pragma journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_readers_see_the_old_snapshot_or_the_new_one_never_half(warehouse, publisher):
    url, data = warehouse
    publisher.publish_once()
    reader = sqlite3.connect(f"file:{publisher.sqlite_path}?mode=ro", uri=True)
    reader.execute("begin")
    before = reader.execute("select count from forage_submissions").fetchone()[0]
    escs_before = reader.execute("select sum(value) from forage_escs").fetchone()[0]

    execute(url, "update marts.forage_submissions set count = count + 1")
    execute(url, "update marts.forage_escs set value = value + 1")
    # The writer does not wait for the open read transaction (WAL) …
    assert publisher.publish_once() is True
    # … and the reader's transaction still sees the whole old publication.
    assert reader.execute("select count from forage_submissions").fetchone()[0] == before
    assert reader.execute("select sum(value) from forage_escs").fetchone()[0] == escs_before
    reader.execute("commit")
    assert reader.execute("select count from forage_submissions").fetchone()[0] == before + 1
    reader.close()


def test_a_failed_publication_leaves_the_previous_one_intact(warehouse, publisher):
    url, data = warehouse
    publisher.publish_once()
    before = sqlite_rows(publisher.sqlite_path, "forage_submissions")
    execute(url, "update marts.forage_submissions set count = count + 1")
    data_now = publisher.fetch()
    # Break the second table's rows so the insert fails half-way through the transaction.
    columns, rows = data_now["forage_submissions_over_time"]
    data_now["forage_submissions_over_time"] = (columns, [(*rows[0], "one value too many")])
    with pytest.raises(sqlite3.Error):
        publisher._write(data_now, "broken")
    assert sqlite_rows(publisher.sqlite_path, "forage_submissions") == before
    # The next regular publication goes through.
    assert publisher.publish_once() is True


def test_views_and_changed_columns_are_published(warehouse, publisher):
    url, data = warehouse
    execute(
        url,
        "create view marts.country_profile as select country, n as students from marts.forage_escs",
    )
    assert publisher.publish_once() is True
    assert len(sqlite_rows(publisher.sqlite_path, "country_profile")) == len(data["forage_escs"])
    execute(url, "alter table marts.freshness add column checked_at timestamptz default now()")
    assert publisher.publish_once() is True
    conn = sqlite3.connect(publisher.sqlite_path)
    columns = [r[1] for r in conn.execute("pragma table_info(freshness)")]
    conn.close()
    assert columns == ["source", "lag_ms", "status", "checked_at"]


def test_run_publishes_at_the_interval_until_stopped(warehouse, publisher):
    url, data = warehouse
    stop = threading.Event()
    thread = threading.Thread(target=publisher.run, args=(0.05, stop), daemon=True)
    thread.start()
    try:
        target = data["forage_submissions"][0][0] + 100
        execute(url, "update marts.forage_submissions set count = %s", (target,))
        deadline = time.monotonic() + 10
        seen = None
        while time.monotonic() < deadline:
            rows = []
            try:
                rows = sqlite_rows(publisher.sqlite_path, "forage_submissions")
            except sqlite3.OperationalError:
                pass
            seen = rows[0][0] if rows else None
            if seen == target:
                break
            time.sleep(0.05)
        assert seen == target
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()


def test_pulse_publish_once_command(warehouse, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PULSE_WAREHOUSE_URL", warehouse[0])
    monkeypatch.setenv("PULSE_SOURCE_URL_TEMPLATE", warehouse[0] + "_{country}")
    parser = argparse.ArgumentParser()
    serving_cli.register(parser.add_subparsers())
    target = tmp_path / "cli.db"
    args = parser.parse_args(["publish", "--once", "--sqlite", str(target)])
    assert args.func(args) == 0
    assert "published" in capsys.readouterr().out
    assert sqlite_rows(target, "forage_submissions") == [
        (warehouse[1]["forage_submissions"][0][0],)
    ]
    assert args.func(args) == 0
    assert "unchanged" in capsys.readouterr().out


def test_analyst_marts_are_read_at_their_own_slower_interval(warehouse, tmp_path):
    url, data = warehouse
    execute(url, "create table marts.reconciliation (index_name text, mean_abs_diff float8)")
    execute(url, "insert into marts.reconciliation values ('escs', 0.5)")
    with Publisher(url, tmp_path / "a.db", analyst_interval=1.0) as pub:
        assert pub.publish_once() is True
        assert sqlite_rows(pub.sqlite_path, "reconciliation") == [("escs", 0.5)]
        execute(url, "update marts.reconciliation set mean_abs_diff = 0.25")
        # Within the interval the analyst mart is not re-read; the serving marts are.
        assert pub.publish_once() is False
        execute(url, "update marts.forage_submissions set count = count + 1")
        assert pub.publish_once() is True
        assert sqlite_rows(pub.sqlite_path, "reconciliation") == [("escs", 0.5)]
        time.sleep(1.1)
        assert pub.publish_once() is True
        assert sqlite_rows(pub.sqlite_path, "reconciliation") == [("escs", 0.25)]
