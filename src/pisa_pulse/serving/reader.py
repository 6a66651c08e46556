"""Read the published tables from the SQLite file, read-only, cached until the file changes.

The publisher rewrites a few small tables a few times a second while Forage polls 5 URLs every
second from every open dashboard: re-reading only when SQLite's `data_version` says another
connection committed keeps each request to one cheap pragma.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path


class TableMissing(LookupError):
    """The table has not been published (yet)."""


class PublishedTables:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None
        self._version = None
        self._cache: dict[str, list[dict]] = {}
        # Answers derived from the current data (e.g. encoded JSON), dropped with the rows.
        self.memo: dict = {}

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            if not self.path.exists():
                raise TableMissing(f"{self.path} does not exist yet")
            # mode=ro: this connection cannot write, whatever runs on it.
            self._conn = sqlite3.connect(
                f"file:{self.path}?mode=ro", uri=True, check_same_thread=False
            )
        return self._conn

    def refresh(self) -> None:
        """Forget what was read if another connection has committed since."""
        version = self._connection().execute("pragma data_version").fetchone()[0]
        if version != self._version:
            self._cache.clear()
            self.memo.clear()
            self._version = version

    def rows(self, table: str) -> list[dict]:
        """The table's rows (call refresh() first to see the latest publication)."""
        conn = self._connection()
        if table not in self._cache:
            try:
                cur = conn.execute(f'select * from "{table}"')
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    raise TableMissing(f"{table} has not been published yet") from exc
                raise
            names = [d[0] for d in cur.description]
            self._cache[table] = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        return self._cache[table]

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
