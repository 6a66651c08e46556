"""Copy the serving marts from the warehouse into the SQLite file Datasette reads.

In place (Datasette keeps its connections open, so the file is never swapped by rename), in one
`BEGIN IMMEDIATE` transaction (WAL mode: readers see the old snapshot or the new one, never half),
and only when the fetched rows differ from what was last published (a digest).

    pub = Publisher(warehouse_url, sqlite_path)
    changed = pub.publish_once()
    pub.close()
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import logging
import sqlite3
import threading
import time
from pathlib import Path

import psycopg2

from pisa_pulse.core import config
from pisa_pulse.serving import catalog

# What is published, from which schema, and how often it is re-read: dbt's manifest says
# (tag `served`, `meta.served`; serving/catalog.py). Analyst marts (refresh `analyst_interval`)
# change slowly and can cost more to read: fetched at most every `analyst_interval` seconds.
DEFAULT_ANALYST_INTERVAL_S = 5.0
SCHEMA = "marts"  # where a table the catalog does not know is read from
# One row describing the last publication: when, and the digest of what was published.
PUBLICATION_TABLE = "publication"
DEFAULT_INTERVAL_S = 0.25
log = logging.getLogger(__name__)

# PostgreSQL type OIDs → SQLite column affinity.
_INTEGER_OIDS = {16, 20, 21, 23, 26}  # bool, int8, int2, int4, oid
_REAL_OIDS = {700, 701, 1700}  # float4, float8, numeric


def default_sqlite_path() -> Path:
    return config.home() / "pulse.db"


def _sqlite_type(oid: int) -> str:
    if oid in _INTEGER_OIDS:
        return "INTEGER"
    if oid in _REAL_OIDS:
        return "REAL"
    return "TEXT"


def _to_sqlite(value):
    """A warehouse value as SQLite stores it (timestamps as ISO 8601 text, UTC)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, list | dict):
        return repr(value)
    return value


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def open_sqlite(path: Path) -> sqlite3.Connection:
    """The writer's connection: WAL so Datasette's readers never wait for a publication."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # check_same_thread off: a Publisher may be built in one thread and run in another
    # (one thread at a time uses it).
    conn = sqlite3.connect(path, isolation_level=None, timeout=10, check_same_thread=False)
    conn.execute("pragma journal_mode=wal")
    conn.execute("pragma synchronous=normal")
    conn.execute(
        f"create table if not exists {PUBLICATION_TABLE} "
        "(published_at TEXT, digest TEXT, tables TEXT)"
    )
    return conn


def ensure_sqlite(path: Path) -> None:
    """Create the SQLite file (empty, WAL) so Datasette can open it before a first publication."""
    open_sqlite(path).close()


class Publisher:
    def __init__(
        self,
        warehouse_url: str,
        sqlite_path: str | Path,
        tables=None,
        analyst_interval: float = DEFAULT_ANALYST_INTERVAL_S,
        served: catalog.Catalog | None = None,
    ):
        """`tables`: the names to publish (default: every served mart of the catalog);
        `served`: the catalog (default: `catalog.load()`, dbt's manifest)."""
        served = served or catalog.load()
        self.warehouse_url = warehouse_url
        self.sqlite_path = Path(sqlite_path)
        self.tables = tuple(served.names() if tables is None else tables)
        self.schemas = {t: served.schemas().get(t, SCHEMA) for t in self.tables}
        self.analyst_tables = frozenset(served.analyst_interval())
        self.analyst_interval = analyst_interval
        self._analyst: dict = {}  # the analyst marts as last fetched
        self._analyst_at = float("-inf")
        self._pg = None
        self._sqlite = open_sqlite(self.sqlite_path)
        row = self._sqlite.execute(f"select digest from {PUBLICATION_TABLE}").fetchone()
        self._digest = row[0] if row else None

    # -- warehouse side -------------------------------------------------------------------

    def _connection(self):
        if self._pg is None or self._pg.closed:
            self._pg = psycopg2.connect(self.warehouse_url, application_name="pulse-publisher")
            self._pg.set_session(isolation_level="REPEATABLE READ", readonly=True)
            with self._pg.cursor() as cur:
                cur.execute("set time zone 'UTC'")
            self._pg.commit()
        return self._pg

    def _select(self, cur, table: str) -> None:
        """Run the query reading one mart (a subclass may prepare it instead)."""
        cur.execute(f"select * from {self.relation(table)}")

    def relation(self, table: str) -> str:
        """The quoted warehouse relation a published table is read from."""
        return f"{_quote(self.schemas[table])}.{_quote(table)}"

    def fetch(self) -> dict[str, tuple[list[tuple[str, str]], list[tuple]]]:
        """Every existing mart as (columns with SQLite types, rows), from one snapshot."""
        conn = self._connection()
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "select n.nspname, c.relname from pg_class c"
                    " join pg_namespace n on n.oid = c.relnamespace"
                    " where n.nspname = any(%s) and c.relname = any(%s)"
                    " and c.relkind in ('r', 'v', 'm', 'p', 'f')",
                    (sorted(set(self.schemas.values())), list(self.tables)),
                )
                present = {name for schema, name in cur.fetchall() if self.schemas[name] == schema}
                result = {}
                analyst_due = time.monotonic() - self._analyst_at >= self.analyst_interval
                if analyst_due:
                    self._analyst = {}
                    self._analyst_at = time.monotonic()
                for table in self.tables:
                    if table not in present:
                        continue
                    if table in self.analyst_tables and not analyst_due:
                        if table in self._analyst:
                            result[table] = self._analyst[table]
                            continue
                    self._select(cur, table)
                    columns = [(d.name, _sqlite_type(d.type_code)) for d in cur.description]
                    rows = [tuple(_to_sqlite(v) for v in row) for row in cur.fetchall()]
                    result[table] = (columns, rows)
                    if table in self.analyst_tables:
                        self._analyst[table] = result[table]
            conn.commit()
        except psycopg2.Error:
            conn.close()  # reconnect next time (warehouse restarted, view rebuilt…)
            raise
        return result

    # -- SQLite side ----------------------------------------------------------------------

    @staticmethod
    def digest(data) -> str:
        h = hashlib.blake2b(digest_size=16)
        for table in sorted(data):
            columns, rows = data[table]
            h.update(repr((table, columns, rows)).encode())
        return h.hexdigest()

    def _write(self, data, digest: str) -> None:
        db = self._sqlite
        db.execute("begin immediate")
        try:
            for table, (columns, rows) in data.items():
                existing = [(r[1], r[2]) for r in db.execute(f"pragma table_info({_quote(table)})")]
                if existing != columns:
                    db.execute(f"drop table if exists {_quote(table)}")
                    cols = ", ".join(f"{_quote(n)} {t}" for n, t in columns)
                    db.execute(f"create table {_quote(table)} ({cols})")
                else:
                    db.execute(f"delete from {_quote(table)}")
                if rows:
                    marks = ", ".join("?" * len(columns))
                    db.executemany(f"insert into {_quote(table)} values ({marks})", rows)
            db.execute(f"delete from {PUBLICATION_TABLE}")
            db.execute(
                f"insert into {PUBLICATION_TABLE} values (?, ?, ?)",
                (
                    dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
                    digest,
                    ",".join(sorted(data)),
                ),
            )
            db.execute("commit")
        except BaseException:
            db.execute("rollback")
            raise

    def publish_once(self) -> bool:
        """Publish if the marts changed since the last publication; True when it wrote."""
        data = self.fetch()
        digest = self.digest(data)
        if digest == self._digest:
            return False
        self._write(data, digest)
        self._digest = digest
        return True

    def run(
        self,
        interval: float = DEFAULT_INTERVAL_S,
        stop: threading.Event | None = None,
        on_error=None,
    ) -> None:
        """Publish every `interval` seconds until `stop` is set; errors are reported, not fatal."""
        stop = stop or threading.Event()
        while not stop.is_set():
            started = time.monotonic()
            try:
                self.publish_once()
            except (psycopg2.Error, sqlite3.Error) as exc:
                (on_error or log.warning)(exc)
            stop.wait(max(0.0, interval - (time.monotonic() - started)))

    def close(self) -> None:
        if self._pg is not None:
            self._pg.close()
            self._pg = None
        self._sqlite.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
