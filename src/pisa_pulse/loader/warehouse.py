"""The one warehouse writer: a tick's batches, watermarks and statuses in ONE transaction.

Commits are serial (one connection, one thread), so a visible `_load_seq` implies every
smaller one is visible: dbt uses max(_load_seq) as its high-water mark.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from datetime import datetime

import psycopg2
from psycopg2.extras import execute_values

from pisa_pulse.loader.columns import Column
from pisa_pulse.loader.schema import ensure_schema
from pisa_pulse.loader.source import Batch, Watermark, close_quietly
from pisa_pulse.loader.validate import Rejected

_COPY_CHUNK = 1 << 20


@dataclass
class SourceStats:
    """What the engine knows about a source at write time (rates are computed in memory)."""

    rows_per_s: float = 0.0


@dataclass
class WriteResult:
    inserted: dict[str, int] = field(default_factory=dict)
    deleted: dict[str, int] = field(default_factory=dict)
    quarantined: dict[str, int] = field(default_factory=dict)
    needs_ids: set[str] = field(default_factory=set)  # counts differ: compare ids next
    missing: dict[str, list[int]] = field(default_factory=dict)  # ids to fetch next
    load_seq: tuple[int, int] | None = None
    committed_at: float | None = None


def _prefixed(cnt: str, rows: bytes) -> bytes:
    """COPY lines with `cnt<TAB>` in front of each (rows end with a newline)."""
    prefix = cnt.encode() + b"\t"
    return prefix + rows[:-1].replace(b"\n", b"\n" + prefix) + b"\n"


def _is_first_copy(b: Batch) -> bool:
    """A page of the initial copy of a source (the next one's watermark is still paging)."""
    wm = b.request.watermark
    return wm.horizon_xid is None or wm.backfill_after_id is not None


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Warehouse:
    def __init__(self, url: str):
        self.url = url
        self.conn = None
        self._rows_columns: set[str] = set()

    # -- connection ---------------------------------------------------------------------
    def connect(self, columns: list[Column]) -> list[str]:
        """Connect, create/extend the raw layer. Returns columns added to raw.responses."""
        self.close()
        self.conn = psycopg2.connect(
            self.url,
            connect_timeout=5,
            application_name="pulse-loader",
            options="-c DateStyle=ISO -c TimeZone=UTC",
            keepalives=1,
            keepalives_idle=5,
            keepalives_interval=2,
            keepalives_count=3,
        )
        self._rows_columns = set()
        return ensure_schema(self.conn, columns)

    @property
    def connected(self) -> bool:
        return self.conn is not None and not self.conn.closed

    def close(self) -> None:
        close_quietly(self.conn)
        self.conn = None

    def add_columns(self, columns: list[Column]) -> list[str]:
        return ensure_schema(self.conn, columns)

    def watermarks(self) -> dict[str, Watermark]:
        with self.conn.cursor() as cur:
            cur.execute(
                "select cnt, horizon_xid, read_at, source_db_oid, backfill_after_id, "
                "loaded_columns from raw.loader_sources"
            )
            out = {
                cnt: Watermark(h, r, o, b, tuple(cols) if cols is not None else None)
                for cnt, h, r, o, b, cols in cur.fetchall()
            }
        self.conn.rollback()
        return out

    # -- writing ------------------------------------------------------------------------
    def write(
        self,
        batches: list[Batch],
        failures: dict[str, str],
        stats: dict[str, SourceStats],
    ) -> WriteResult:
        """Apply everything in one transaction. On any error: rollback and re-raise."""
        result = WriteResult()
        try:
            with self.conn.cursor() as cur:
                newest = self._insert_rows(cur, batches, result)
                self._quarantine(cur, batches, result)
                self._fill_columns(cur, batches)
                self._reconcile(cur, batches, result)
                self._update_sources(cur, batches, failures, stats, newest, result)
            self.conn.commit()
        except BaseException:
            try:
                self.conn.rollback()
            except psycopg2.Error:
                pass
            raise
        result.committed_at = time.time()
        return result

    def _ensure_rows_table(self, cur, names: list[str]) -> None:
        if set(names) <= self._rows_columns:
            return
        self._rows_columns |= set(names)
        cols = "".join(f", {_q(n)} text" for n in sorted(self._rows_columns))
        cur.execute(
            "drop table if exists pg_temp._rows; "
            f"create temp table _rows (cnt text, id bigint, created_at timestamptz{cols}) "
            "on commit delete rows"
        )

    def _insert_rows(self, cur, batches: list[Batch], result: WriteResult) -> dict:
        """COPY every batch's rows into a temp table, then one INSERT … ON CONFLICT DO NOTHING."""
        newest = {}
        groups: dict[tuple[str, ...], list[Batch]] = {}
        for b in batches:
            if b.rows:
                key = (tuple(c.name for c in b.request.columns), _is_first_copy(b))
                groups.setdefault(key, []).append(b)
        for (names, first_copy), group in groups.items():
            cols = ", ".join(_q(n) for n in names)
            if first_copy and self._copy_direct(cur, cols, group, result, newest):
                continue
            self._ensure_rows_table(cur, list(names))
            copy_sql = f"copy _rows (cnt, id, created_at, {cols}) from stdin"
            payload = b"".join(_prefixed(b.cnt, b.rows) for b in group)
            cur.execute("savepoint rows_copy")
            try:
                cur.copy_expert(copy_sql, io.BytesIO(payload), size=_COPY_CHUNK)
            except psycopg2.DataError:
                # Something the validator did not foresee: find the bad lines one by one.
                cur.execute("rollback to savepoint rows_copy")
                for b in group:
                    self._copy_line_by_line(cur, copy_sql, b)
            cur.execute(
                f"""
                with ins as (
                    insert into raw.responses (cnt, id, created_at, {cols})
                    select cnt, id, created_at, {cols} from _rows
                    on conflict (cnt, id) do nothing
                    returning cnt, created_at, _load_seq
                )
                select cnt, count(*), max(created_at), min(_load_seq), max(_load_seq)
                from ins group by cnt
                """
            )
            for cnt, n, newest_at, lo, hi in cur.fetchall():
                result.inserted[cnt] = result.inserted.get(cnt, 0) + n
                newest[cnt] = max(newest_at, newest.get(cnt, newest_at))
                lo0, hi0 = result.load_seq or (lo, hi)
                result.load_seq = (min(lo, lo0), max(hi, hi0))
            cur.execute("truncate _rows")
        return newest

    def _copy_direct(self, cur, cols: str, group: list[Batch], result, newest) -> bool:
        """Pages of a first copy: straight into raw.responses (COPY's bulk path, no temp
        table). Nothing of these sources is loaded yet, so a key conflict is unexpected;
        if one happens (or bad data), fall back to the temp table path."""
        payload = b"".join(_prefixed(b.cnt, b.rows) for b in group)
        cur.execute("savepoint direct_copy")
        try:
            cur.execute(
                "select case when is_called then last_value + 1 else last_value end "
                "from raw.load_seq"
            )
            (lo,) = cur.fetchone()
            cur.copy_expert(
                f"copy raw.responses (cnt, id, created_at, {cols}) from stdin",
                io.BytesIO(payload),
                size=_COPY_CHUNK,
            )
            cur.execute("select last_value from raw.load_seq")
            (hi,) = cur.fetchone()
        except (psycopg2.IntegrityError, psycopg2.DataError):
            cur.execute("rollback to savepoint direct_copy")
            return False
        for b in group:
            lines = [line for line in b.rows.split(b"\n") if line]
            result.inserted[b.cnt] = result.inserted.get(b.cnt, 0) + len(lines)
            # ISO timestamps in UTC sort as text ('+' < '.' < digits, so 38+00 < 38.5+00).
            top = max(line.split(b"\t", 2)[1] for line in lines).decode()
            newest[b.cnt] = datetime.fromisoformat(top)
        lo0, hi0 = result.load_seq or (lo, hi)
        result.load_seq = (min(lo, lo0), max(hi, hi0))
        return True

    def _copy_line_by_line(self, cur, copy_sql: str, batch: Batch) -> None:
        prefix = batch.cnt.encode() + b"\t"
        good = []
        for line in batch.rows.split(b"\n"):
            if not line:
                continue
            cur.execute("savepoint one_line")
            try:
                cur.copy_expert(copy_sql, io.BytesIO(prefix + line + b"\n"))
                good.append(line)
            except psycopg2.DataError as exc:
                cur.execute("rollback to savepoint one_line")
                reason = str(exc).strip().splitlines()[0][:500]
                row_id = int(line.split(b"\t", 1)[0])
                text = line.decode("utf-8", "backslashreplace").replace("\x00", "\\x00")
                batch.rejected.append(Rejected(row_id, reason, None, text[:2000]))
        batch.rows = b"\n".join(good) + b"\n" if good else b""

    def _quarantine(self, cur, batches: list[Batch], result: WriteResult) -> None:
        values = [
            (b.cnt, r.id, r.reason, r.column, r.row_text) for b in batches for r in b.rejected
        ]
        if not values:
            return
        rows = execute_values(
            cur,
            """
            insert into raw.quarantine as q (cnt, id, reason, column_name, row_text)
            values %s
            on conflict (cnt, id) do update set
                reason = excluded.reason,
                column_name = excluded.column_name,
                row_text = excluded.row_text,
                last_seen_at = now()
            returning cnt, (xmax = 0) as inserted
            """,
            values,
            fetch=True,
        )
        for cnt, inserted in rows:
            if inserted:
                result.quarantined[cnt] = result.quarantined.get(cnt, 0) + 1

    def _fill_columns(self, cur, batches: list[Batch]) -> None:
        """Newly declared columns: fill them on the rows loaded before (bumps _load_seq)."""
        for b in batches:
            if not b.fill:
                continue
            names = [c.name for c in b.request.fill_columns]
            cols = ", ".join(_q(n) for n in names)
            cur.execute(
                "drop table if exists pg_temp._fill; create temp table _fill (id bigint"
                + "".join(f", {_q(n)} text" for n in names)
                + ") on commit drop"
            )
            cur.copy_expert(f"copy _fill (id, {cols}) from stdin", io.BytesIO(b.fill), _COPY_CHUNK)
            sets = ", ".join(f"{_q(n)} = f.{_q(n)}" for n in names)
            cur.execute(
                f"update raw.responses r set {sets}, _load_seq = nextval('raw.load_seq') "
                "from _fill f where r.cnt = %s and r.id = f.id",
                (b.cnt,),
            )
            cur.execute("drop table _fill")

    def _delete_with_tombstones(self, cur, cnt: str, keep_ids_table: bool) -> int:
        keep = (
            "and not exists (select 1 from _ids i where i.cnt = r.cnt and i.id = r.id)"
            if keep_ids_table
            else ""
        )
        cur.execute(
            f"""
            with gone as (
                delete from raw.responses r where r.cnt = %s {keep} returning r.cnt, r.id
            )
            insert into raw.responses_deleted (cnt, id) select cnt, id from gone
            """,
            (cnt,),
        )
        n = cur.rowcount
        cur.execute(
            "delete from raw.quarantine q where q.cnt = %s "
            + keep.replace("r.cnt", "q.cnt").replace("r.id", "q.id"),
            (cnt,),
        )
        return n

    def _reconcile(self, cur, batches: list[Batch], result: WriteResult) -> None:
        counted = {b.cnt: b.source_rows for b in batches if b.source_rows is not None}
        if counted:
            cur.execute(
                """
                select c.cnt,
                    (select count(*) from raw.responses r where r.cnt = c.cnt)
                    + (select count(*) from raw.quarantine q where q.cnt = c.cnt)
                from unnest(%s::text[]) as c (cnt)
                """,
                (list(counted),),
            )
            for cnt, have in cur.fetchall():
                if counted[cnt] == 0 and have:
                    result.deleted[cnt] = self._delete_with_tombstones(cur, cnt, False)
                elif counted[cnt] != have:
                    result.needs_ids.add(cnt)
        listed = [b for b in batches if b.ids is not None]
        if not listed:
            return
        cur.execute(
            "create temp table if not exists _ids (cnt text, id bigint) on commit delete rows"
        )
        payload = b"".join(_prefixed(b.cnt, b.ids) for b in listed if b.ids)
        if payload:
            cur.copy_expert("copy _ids (cnt, id) from stdin", io.BytesIO(payload), _COPY_CHUNK)
        cur.execute("analyze _ids")
        for b in listed:
            n = self._delete_with_tombstones(cur, b.cnt, True)
            if n:
                result.deleted[b.cnt] = result.deleted.get(b.cnt, 0) + n
            cur.execute(
                """
                select i.id from _ids i
                where i.cnt = %(cnt)s
                    and not exists (
                        select 1 from raw.responses r where r.cnt = i.cnt and r.id = i.id
                    )
                    and not exists (
                        select 1 from raw.quarantine q where q.cnt = i.cnt and q.id = i.id
                    )
                """,
                {"cnt": b.cnt},
            )
            result.missing[b.cnt] = [r[0] for r in cur.fetchall()]
        cur.execute("truncate _ids")

    def _update_sources(self, cur, batches, failures, stats, newest, result) -> None:
        ok = []
        for b in batches:
            wm = b.watermark
            ok.append(
                (
                    b.cnt,
                    result.inserted.get(b.cnt, 0),
                    stats.get(b.cnt, SourceStats()).rows_per_s,
                    newest.get(b.cnt),
                    wm.horizon_xid,
                    wm.read_at,
                    wm.db_oid,
                    wm.backfill_after_id,
                    list(wm.loaded_columns) if wm.loaded_columns is not None else None,
                    b.source_rows,
                    result.deleted.get(b.cnt, 0),
                    result.quarantined.get(b.cnt, 0),
                    b.source_rows is not None or b.ids is not None,
                )
            )
        if ok:
            execute_values(
                cur,
                """
                insert into raw.loader_sources as s (
                    cnt, status, rows_loaded, rows_per_s, newest_created_at, lag_ms,
                    last_polled_at, horizon_xid, read_at, source_db_oid, backfill_after_id,
                    loaded_columns, source_rows, rows_deleted, rows_quarantined,
                    last_reconciled_at
                )
                select v.cnt, 'ok', v.n, v.rate, v.newest,
                    (extract(epoch from clock_timestamp() - v.newest) * 1000)::bigint,
                    clock_timestamp(), v.horizon, v.read_at, v.db_oid, v.after_id,
                    v.cols, v.source_rows, v.deleted, v.quarantined,
                    case when v.reconciled then clock_timestamp() end
                from (values %s) as v (
                    cnt, n, rate, newest, horizon, read_at, db_oid, after_id, cols,
                    source_rows, deleted, quarantined, reconciled
                )
                on conflict (cnt) do update set
                    status = 'ok',
                    rows_loaded = s.rows_loaded + excluded.rows_loaded,
                    rows_per_s = excluded.rows_per_s,
                    newest_created_at = greatest(s.newest_created_at, excluded.newest_created_at),
                    lag_ms = (
                        extract(epoch from clock_timestamp()
                            - greatest(s.newest_created_at, excluded.newest_created_at)) * 1000
                    )::bigint,
                    last_polled_at = excluded.last_polled_at,
                    horizon_xid = excluded.horizon_xid,
                    read_at = excluded.read_at,
                    source_db_oid = excluded.source_db_oid,
                    backfill_after_id = excluded.backfill_after_id,
                    loaded_columns = excluded.loaded_columns,
                    source_rows = coalesce(excluded.source_rows, s.source_rows),
                    rows_deleted = s.rows_deleted + excluded.rows_deleted,
                    rows_quarantined = s.rows_quarantined + excluded.rows_quarantined,
                    last_reconciled_at = coalesce(excluded.last_reconciled_at, s.last_reconciled_at)
                """,
                ok,
                template="(%s, %s::bigint, %s::float8, %s::timestamptz, %s::bigint, "
                "%s::timestamptz, %s::bigint, %s::bigint, %s::text[], %s::bigint, %s::bigint, "
                "%s::bigint, %s::boolean)",
            )
        if failures:
            execute_values(
                cur,
                """
                insert into raw.loader_sources as s (cnt, status, last_error, last_error_at)
                select v.cnt, 'down', v.err, clock_timestamp() from (values %s) as v (cnt, err)
                on conflict (cnt) do update set
                    status = 'down', last_error = excluded.last_error,
                    last_error_at = excluded.last_error_at
                """,
                list(failures.items()),
            )
