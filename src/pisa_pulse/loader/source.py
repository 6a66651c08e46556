"""Reading one application database: new rows since the last horizon, inside one snapshot.

Sources are SELECT-only. Each read runs in a REPEATABLE READ, READ ONLY transaction whose
first statement fixes the snapshot and takes its xmin as the new horizon H: every
transaction older than H has finished, so every row it wrote is visible now. The next
read selects rows whose inserting transaction (`xmin`, 32 bits, compared modulo 2^32) is
not older than the previous H, restricted to `created_at >= previous read time - overlap`
so that the `created_at` index is used. A writer that keeps its transaction open longer
than the overlap is caught by the reconciliation (see pisa_pulse.loader.engine).
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import psycopg2

from pisa_pulse.loader.columns import Column
from pisa_pulse.loader.validate import DEFAULT_MAX_VALUE_CHARS, Rejected, split_valid

# lock_timeout: a read queued behind a TRUNCATE gives up instead of holding a thread.
_SESSION_OPTIONS = (
    "-c DateStyle=ISO -c TimeZone=UTC -c statement_timeout=120000 -c lock_timeout=2000"
)
_MIN_ID = -(2**63)


def close_quietly(conn) -> None:
    """Close a connection that may already be broken (a dead source, a restarted warehouse)."""
    if conn is not None:
        try:
            conn.close()
        except psycopg2.Error:
            pass


@dataclass(frozen=True)
class Watermark:
    """What has been loaded from one source; committed with the rows (raw.loader_sources)."""

    horizon_xid: int | None = None  # snapshot xmin (64-bit) of the last read; None: never read
    read_at: datetime | None = None  # the source's now() at that read
    db_oid: int | None = None  # a recreated database starts over
    backfill_after_id: int | None = None  # initial copy pages by id while this is set
    loaded_columns: tuple[str, ...] | None = None  # columns every warehouse row of it has
    # (id, xmin) of the rows the last read found: in memory only (not persisted). The next
    # read skips them instead of copying them again. The horizon is the snapshot's xmin,
    # which any open transaction anywhere on the source's server holds back, so without
    # this every read re-copied the full-width rows of the last second or so (several
    # times the new rows at 1,000 submissions/s with the warehouse on the same server).
    # An updated row has a new xmin and is read again; after a restart the set is empty.
    recent: frozenset = field(default_factory=frozenset, compare=False, repr=False)


@dataclass
class ReadRequest:
    cnt: str
    watermark: Watermark
    columns: list[Column]
    count_rows: bool = False  # reconciliation, step 1: count in the same snapshot
    list_ids: bool = False  # reconciliation, step 2: every id in the same snapshot
    fetch_ids: list[int] = field(default_factory=list)  # missing rows found by step 2
    fill_columns: list[Column] = field(default_factory=list)  # newly declared columns


@dataclass
class Batch:
    """The result of one read: everything the warehouse writer needs for one source."""

    request: ReadRequest
    watermark: Watermark  # the new watermark, valid once `rows` is committed
    rows: bytes = b""  # COPY text: id, created_at, columns…
    rejected: list[Rejected] = field(default_factory=list)
    source_rows: int | None = None
    ids: bytes | None = None  # COPY text of every id (reconciliation step 2)
    fill: bytes = b""  # COPY text: id, fill columns…
    read_s: float = 0.0

    @property
    def cnt(self) -> str:
        return self.request.cnt


class SourceReader:
    """One persistent connection to one application database (used by one thread at a time)."""

    def __init__(
        self,
        cnt: str,
        url: str,
        *,
        overlap_s: float = 10.0,
        page_rows: int = 1_000,
        max_value_chars: int = DEFAULT_MAX_VALUE_CHARS,
        connect_timeout: int = 3,
    ):
        self.cnt = cnt
        self.url = url
        self.overlap = timedelta(seconds=overlap_s)
        self.page_rows = page_rows
        self.max_value_chars = max_value_chars
        self.connect_timeout = connect_timeout
        self.conn = None
        self._source_columns: set[str] | None = None
        self._prepared = False

    # -- connection ---------------------------------------------------------------------
    def _connect(self):
        if self.conn is None or self.conn.closed:
            self.conn = psycopg2.connect(
                self.url,
                connect_timeout=self.connect_timeout,
                application_name="pulse-loader",
                options=_SESSION_OPTIONS,
                keepalives=1,
                keepalives_idle=5,
                keepalives_interval=2,
                keepalives_count=3,
            )
            # Autocommit: the common read is one statement (one round trip, its own
            # snapshot); reads that need several statements open a snapshot explicitly.
            self.conn.autocommit = True
            self._source_columns = None
            self._prepared = False
        return self.conn

    def cancel(self) -> None:
        """Interrupt a running read (from another thread)."""
        conn = self.conn
        if conn is not None and not conn.closed:
            try:
                conn.cancel()
            except psycopg2.Error:
                pass

    def close(self) -> None:
        close_quietly(self.conn)
        self.conn = None

    # -- reading ------------------------------------------------------------------------
    def _select_list(self, cur, columns: list[Column]) -> str:
        if self._source_columns is None:
            cur.execute(
                "select column_name from information_schema.columns "
                "where table_schema = 'public' and table_name = 'responses'"
            )
            self._source_columns = {r[0] for r in cur.fetchall()}
        # A declared column the source lacks is loaded as NULL.
        return ", ".join(
            f'"{c.source}"' if c.source in self._source_columns else "null" for c in columns
        )

    def _copy(self, cur, query: str, params=None) -> bytes:
        buf = io.BytesIO()
        sql = cur.mogrify(query, params).decode() if params is not None else query
        cur.copy_expert(f"copy ({sql}) to stdout", buf)
        return buf.getvalue()

    def read(self, request: ReadRequest) -> Batch:
        """One snapshot's worth of changes. Raises psycopg2.Error if the source is down."""
        started = time.monotonic()
        try:
            return self._read(request, started)
        except BaseException:
            self.close()  # a broken or cancelled connection is never reused
            raise

    def _simple(self, request: ReadRequest) -> bool:
        wm = request.watermark
        return (
            wm.horizon_xid is not None
            and wm.backfill_after_id is None
            and not (request.count_rows or request.list_ids or request.fetch_ids)
            and not request.fill_columns
            and len(request.columns) >= 2
        )

    def _read(self, request: ReadRequest, started: float) -> Batch:
        conn = self._connect()
        with conn.cursor() as cur:
            select = "id, created_at, " + self._select_list(cur, request.columns)
            if self._simple(request):
                batch = self._read_one_statement(cur, request, select)
            else:
                cur.execute("begin isolation level repeatable read read only")
                batch = self._read_in_snapshot(cur, request, select)
                cur.execute("rollback")  # read-only: ends the snapshot
        names = ["id", "created_at"] + [c.name for c in request.columns]
        batch.rows, batch.rejected = split_valid(batch.rows, names, self.max_value_chars)
        if batch.fill:
            fill_names = ["id"] + [c.name for c in request.fill_columns]
            batch.fill, _ = split_valid(batch.fill, fill_names, self.max_value_chars)
        batch.read_s = time.monotonic() - started
        return batch

    def _read_one_statement(self, cur, request: ReadRequest, select: str) -> Batch:
        """The common read: a cheap prepared probe, then a COPY of what it found.

        The probe is ONE statement (one snapshot): the ids of rows newer than the horizon,
        plus a marker row (id NULL) carrying now(), the snapshot's xmin and the database
        oid. The COPY of those ids runs later, but a row visible then is still there unless
        deleted (the reconciliation's business), so nothing is missed.
        """
        wm = request.watermark
        if not self._prepared:
            cur.execute(
                "prepare pulse_probe (timestamptz, bigint) as "
                "select null::bigint, now()::text, "
                "pg_snapshot_xmin(pg_current_snapshot())::text, "
                "(select oid from pg_database where datname = current_database())::text, "
                "null::text "
                "union all select id, null, null, null, xmin::text from public.responses "
                "where created_at >= $1 "
                "and (xmin::text::bigint - $2 + 4294967296) % 4294967296 < 2147483648"
            )
            self._prepared = True
        cur.execute(
            "execute pulse_probe (%s, %s)", (wm.read_at - self.overlap, wm.horizon_xid % 2**32)
        )
        found, marker = [], None
        for row in cur.fetchall():
            if row[0] is None:
                marker = row
            else:
                found.append((row[0], row[4]))
        now = datetime.fromisoformat(marker[1])
        horizon, db_oid = int(marker[2]), int(marker[3])
        if db_oid != wm.db_oid or horizon < wm.horizon_xid:
            # Database recreated, or the xid counter went back (server replaced): start over.
            return Batch(request=request, watermark=Watermark())
        ids = [row_id for row_id, xmin in found if (row_id, xmin) not in wm.recent]
        new_wm = replace(wm, horizon_xid=horizon, read_at=now, recent=frozenset(found))
        batch = Batch(request=request, watermark=new_wm)
        if ids:
            batch.rows = self._copy(
                cur, f"select {select} from public.responses where id = any(%s)", (ids,)
            )
        return batch

    def _read_in_snapshot(self, cur, request: ReadRequest, select: str) -> Batch:
        wm = request.watermark
        # The first statement fixes the snapshot: its xmin is the new horizon.
        cur.execute(
            "select pg_snapshot_xmin(pg_current_snapshot())::text::bigint, now(), "
            "(select oid from pg_database where datname = current_database()), "
            "to_regclass('public.responses') is not null"
        )
        horizon, now, db_oid, has_table = cur.fetchone()
        if not has_table:
            raise psycopg2.OperationalError("no table public.responses")
        if wm.db_oid is not None and wm.db_oid != db_oid:
            wm = Watermark()  # database recreated: start over
        if wm.horizon_xid is not None and horizon < wm.horizon_xid:
            wm = Watermark()  # xid counter went back (server replaced): start over
        batch = Batch(request=request, watermark=wm)
        if wm.horizon_xid is None:
            # First contact: copy what exists page by page, then go incremental.
            wm = Watermark(
                horizon_xid=horizon,
                read_at=now,
                db_oid=db_oid,
                backfill_after_id=_MIN_ID,
                loaded_columns=tuple(c.name for c in request.columns),
            )
        if wm.backfill_after_id is not None:
            batch.rows = self._copy(
                cur,
                f"select {select} from public.responses where id > %s order by id limit %s",
                (wm.backfill_after_id, self.page_rows),
            )
            n = batch.rows.count(b"\n")
            last_id = _last_id(batch.rows) if n else wm.backfill_after_id
            wm = replace(wm, backfill_after_id=last_id if n >= self.page_rows else None)
        else:
            batch.rows = self._copy(
                cur,
                f"select {select} from public.responses where created_at >= %s "
                "and (xmin::text::bigint - %s + 4294967296) %% 4294967296 < 2147483648",
                (wm.read_at - self.overlap, wm.horizon_xid % 2**32),
            )
            wm = replace(wm, horizon_xid=horizon, read_at=now, db_oid=db_oid)
            if request.fetch_ids:
                batch.rows += self._copy(
                    cur,
                    f"select {select} from public.responses where id = any(%s)",
                    (request.fetch_ids,),
                )
            if request.count_rows:
                # On the primary key (index-only where the visibility map allows): a
                # sequential scan would read every full-width row every interval.
                cur.execute("set local enable_seqscan = off")
                cur.execute("select count(*) from public.responses")
                batch.source_rows = cur.fetchone()[0]
            if request.list_ids:
                batch.ids = self._copy(cur, "select id from public.responses")
            if request.fill_columns:
                batch.fill = self._copy(
                    cur,
                    "select id, "
                    + self._select_list(cur, request.fill_columns)
                    + " from public.responses",
                )
                # The columns filled here are on every row from now on.
                have = set(wm.loaded_columns or ())
                filled = tuple(c.name for c in request.fill_columns if c.name not in have)
                wm = replace(wm, loaded_columns=tuple(wm.loaded_columns or ()) + filled)
        batch.watermark = wm
        return batch


def _last_id(rows: bytes) -> int:
    end = rows.rfind(b"\n", 0, len(rows) - 1)
    return int(rows[end + 1 :].split(b"\t", 1)[0])
