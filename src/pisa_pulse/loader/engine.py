"""The loader's tick: read every source in parallel, write everything with one writer.

Reads run on a small thread pool, one persistent connection per source; a tick waits at
most `read_timeout` for them. A read still running then (slow or hung source) is not
waited for again: its result is written by whichever tick finds it finished. The writes
of a tick (rows, quarantine, deletions, tombstones, watermarks, statuses) are one
warehouse transaction, so a crash at any instant loses and duplicates nothing.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2

from pisa_pulse.core.config import Settings
from pisa_pulse.loader.columns import SOURCES_YML, Column, declared_columns
from pisa_pulse.loader.discovery import discover
from pisa_pulse.loader.source import Batch, ReadRequest, SourceReader, Watermark
from pisa_pulse.loader.validate import DEFAULT_MAX_VALUE_CHARS
from pisa_pulse.loader.warehouse import SourceStats, Warehouse

log = logging.getLogger("loader")

_RATE_WINDOW_S = 10.0


class WarehouseUnavailable(RuntimeError):
    """The warehouse could not be reached or the tick's transaction failed; nothing was written."""


@dataclass
class TickResult:
    rows: dict[str, int] = field(default_factory=dict)  # rows inserted per source
    deleted: dict[str, int] = field(default_factory=dict)
    quarantined: dict[str, int] = field(default_factory=dict)
    polled: list[str] = field(default_factory=list)  # sources whose read was written
    down: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)  # reads still running
    read_s: float = 0.0  # waiting for the sources
    write_s: float = 0.0  # the warehouse transaction
    total_s: float = 0.0
    committed_at: float | None = None  # time.time() when the warehouse commit returned
    load_seq: tuple[int, int] | None = None  # _load_seq range of the rows inserted

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


@dataclass
class _Source:
    cnt: str
    reader: SourceReader
    future: Future | None = None
    slow: bool = False  # its last read outlasted read_timeout: do not wait for it
    failures: int = 0
    down_since: float | None = None
    next_attempt: float = 0.0
    reconcile_due: bool = False  # forced by reconcile()
    next_reconcile: float = 0.0  # monotonic time of its next count comparison
    needs_ids: bool = False
    missing: list[int] = field(default_factory=list)
    loaded: deque = field(default_factory=deque)  # (monotonic, rows) for rows_per_s
    persisted_at: float = float("-inf")  # last write of its raw.loader_sources row

    def rate(self, now: float) -> float:
        while self.loaded and self.loaded[0][0] < now - _RATE_WINDOW_S:
            self.loaded.popleft()
        if not self.loaded:
            return 0.0
        span = max(1.0, now - self.loaded[0][0])
        return sum(n for _, n in self.loaded) / span


class Loader:
    def __init__(
        self,
        settings: Settings,
        *,
        sources: list[str] | None = None,
        reconcile_interval: float = 5.0,
        overlap_s: float = 10.0,
        read_timeout: float = 1.0,
        page_rows: int = 1_000,
        max_value_chars: int = DEFAULT_MAX_VALUE_CHARS,
        max_backoff_s: float = 10.0,
        workers: int = 16,
        status_interval: float = 1.0,
        sources_yml: Path | str | None = None,
    ):
        self.settings = settings
        explicit = sources if sources is not None else settings.sources
        self._explicit = [c.upper() for c in explicit] if explicit else None
        self.reconcile_interval = reconcile_interval
        self.overlap_s = overlap_s
        self.read_timeout = read_timeout
        self.page_rows = page_rows
        self.max_value_chars = max_value_chars
        self.max_backoff_s = max_backoff_s
        self.status_interval = status_interval
        self.sources_yml = Path(sources_yml) if sources_yml else SOURCES_YML
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="loader-read")
        self._warehouse = Warehouse(settings.warehouse_url)
        self._watermarks: dict[str, Watermark] | None = None  # None: reload from warehouse
        self._sources: dict[str, _Source] = {}
        self._columns: list[Column] = declared_columns(self.sources_yml)
        self._yml_mtime = self.sources_yml.stat().st_mtime_ns
        self._last_refresh = float("-inf")
        self._warehouse_down_since: float | None = None
        self._closed = False
        self._discovery_failing = False

    # -- public -------------------------------------------------------------------------
    @property
    def sources(self) -> list[str]:
        return sorted(self._sources)

    @property
    def columns(self) -> list[Column]:
        return list(self._columns)

    def tick(self) -> TickResult:
        """Load whatever is new from every source once. Raises WarehouseUnavailable."""
        if self._closed:
            raise RuntimeError("loader is closed")
        started = time.monotonic()
        self._refresh(started)
        self._ensure_warehouse()
        self._submit(started)
        waited = [s.future for s in self._sources.values() if s.future and not s.slow]
        if waited:
            wait(waited, timeout=self.read_timeout)
        read_done = time.monotonic()
        batches, failures, result = self._collect(read_done)
        # A source with nothing new is written (watermark, lag) at most once a second:
        # a watermark that lags behind only means a slightly larger re-read after a restart.
        to_write = [b for b in batches if self._worth_writing(b, read_done)]
        try:
            written = self._warehouse.write(to_write, failures, self._stats(read_done))
        except psycopg2.Error as exc:
            self._warehouse_lost(exc)
            raise WarehouseUnavailable(str(exc).strip()) from exc
        self._warehouse_back()
        self._after_write(batches, written, read_done)
        for b in to_write:
            self._sources[b.cnt].persisted_at = read_done
        result.rows = {c: n for c, n in written.inserted.items() if n}
        result.deleted = {c: n for c, n in written.deleted.items() if n}
        result.quarantined = written.quarantined
        result.committed_at = written.committed_at
        result.load_seq = written.load_seq
        result.read_s = read_done - started
        result.write_s = time.monotonic() - read_done
        result.total_s = time.monotonic() - started
        return result

    def reconcile(self, max_ticks: int = 10) -> TickResult:
        """Compare every source with the warehouse now and repair; returns the summed ticks."""
        for src in self._sources.values():
            src.reconcile_due = True
        total = TickResult()
        for _ in range(max_ticks):
            r = self.tick()
            for name in ("rows", "deleted", "quarantined"):
                acc = getattr(total, name)
                for cnt, n in getattr(r, name).items():
                    acc[cnt] = acc.get(cnt, 0) + n
            total.polled, total.down, total.pending = r.polled, r.down, r.pending
            if not any(
                s.reconcile_due or s.needs_ids or s.missing
                for s in self._sources.values()
                if s.down_since is None
            ):
                break
        return total

    def close(self) -> None:
        """Stop reads in flight, join the threads, close every connection."""
        if self._closed:
            return
        self._closed = True
        for src in self._sources.values():
            if src.future is not None and not src.future.done():
                src.reader.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)
        for src in self._sources.values():
            src.reader.close()
        self._warehouse.close()

    def __enter__(self) -> Loader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- sources and columns ------------------------------------------------------------
    def _refresh(self, now: float) -> None:
        """Every reconcile interval: rediscover sources, re-read the YAML, schedule counts."""
        if now - self._last_refresh < self.reconcile_interval:
            return
        self._last_refresh = now
        names = self._explicit
        if names is None:
            try:
                names = discover(self.settings)
                self._discovery_failing = False
            except psycopg2.Error as exc:
                if not self._discovery_failing:  # once per outage of the source server
                    log.warning("source discovery failed: %s", str(exc).strip())
                self._discovery_failing = True
                names = []
        for cnt in names:
            if cnt not in self._sources:
                reader = SourceReader(
                    cnt,
                    self.settings.source_url(cnt),
                    overlap_s=self.overlap_s,
                    page_rows=self.page_rows,
                    max_value_chars=self.max_value_chars,
                )
                # Each source gets its own phase, so the counts are spread over the interval.
                phase = zlib.crc32(cnt.encode()) % 1000 / 1000 * self.reconcile_interval
                self._sources[cnt] = _Source(cnt, reader, next_reconcile=now + phase)
                log.info("source %s: %s", cnt, self.settings.source_database(cnt))
        try:
            mtime = self.sources_yml.stat().st_mtime_ns
            if mtime == self._yml_mtime:
                return
            columns = declared_columns(self.sources_yml)
            self._yml_mtime = mtime
        except (OSError, ValueError, KeyError, StopIteration) as exc:
            log.warning("cannot read %s, keeping the columns I have: %s", self.sources_yml, exc)
            return
        if columns != self._columns:
            added = [c.name for c in columns if c not in self._columns]
            log.info("declared columns changed (new: %s)", ", ".join(added) or "none")
            self._columns = columns
            if self._warehouse.connected:
                try:
                    self._warehouse.add_columns(columns)
                except psycopg2.Error as exc:
                    self._warehouse_lost(exc)
                    raise WarehouseUnavailable(str(exc).strip()) from exc

    def _ensure_warehouse(self) -> None:
        if self._warehouse.connected and self._watermarks is not None:
            return
        try:
            added = self._warehouse.connect(self._columns)
            if added:
                log.info("raw.responses: added columns %s", ", ".join(added))
            self._watermarks = self._warehouse.watermarks()
        except psycopg2.Error as exc:
            self._warehouse_lost(exc)
            raise WarehouseUnavailable(str(exc).strip()) from exc

    def _warehouse_lost(self, exc: Exception) -> None:
        self._warehouse.close()
        self._watermarks = None  # the commit may or may not have happened: re-read
        if self._warehouse_down_since is None:
            self._warehouse_down_since = time.monotonic()
            log.error("warehouse unavailable: %s", str(exc).strip().splitlines()[0])

    def _warehouse_back(self) -> None:
        if self._warehouse_down_since is not None:
            down = time.monotonic() - self._warehouse_down_since
            log.info("warehouse back after %.1f s", down)
            self._warehouse_down_since = None

    # -- reading ------------------------------------------------------------------------
    def _request(self, src: _Source, base: Watermark | None = None) -> ReadRequest:
        wm = base or self._watermarks.get(src.cnt, Watermark())
        req = ReadRequest(src.cnt, wm, list(self._columns))
        if wm.horizon_xid is None or wm.backfill_after_id is not None:
            return req  # still copying what existed: reconcile afterwards
        req.count_rows = src.reconcile_due or time.monotonic() >= src.next_reconcile
        req.list_ids = src.needs_ids
        req.fetch_ids = src.missing[: self.page_rows]
        loaded = set(wm.loaded_columns or ())
        req.fill_columns = [c for c in self._columns if c.name not in loaded]
        return req

    def _submit(self, now: float) -> list[_Source]:
        submitted = []
        for src in self._sources.values():
            if src.future is not None or now < src.next_attempt:
                continue
            src.future = self._pool.submit(src.reader.read, self._request(src))
            submitted.append(src)
        return submitted

    def _collect(self, now: float) -> tuple[list[Batch], dict[str, str], TickResult]:
        batches, failures, result = [], {}, TickResult()
        for src in self._sources.values():
            fut = src.future
            if fut is None:
                if src.down_since is not None:
                    result.down.append(src.cnt)
                continue
            if not fut.done():
                src.slow = True
                result.pending.append(src.cnt)
                continue
            src.future = None
            src.slow = False
            try:
                batch = fut.result()
            except Exception as exc:  # noqa: BLE001 - any failure of a source is its outage
                failures[src.cnt] = self._source_failed(src, exc, now)
                result.down.append(src.cnt)
                continue
            if batch.request.watermark != self._watermarks.get(src.cnt, Watermark()):
                continue  # read against a watermark that has since changed: read again
            batches.append(batch)
            result.polled.append(src.cnt)
            if batch.watermark.backfill_after_id is not None:
                # Copying what exists: read the next page while this one is written. If the
                # write fails, the page's base watermark will not match and it is dropped.
                src.future = self._pool.submit(src.reader.read, self._request(src, batch.watermark))
        return batches, failures, result

    def _worth_writing(self, b: Batch, now: float) -> bool:
        return bool(
            b.rows
            or b.rejected
            or b.fill
            or b.ids is not None
            or b.source_rows is not None
            or b.watermark.horizon_xid is None
            or b.watermark.backfill_after_id is not None
            or b.watermark.loaded_columns != b.request.watermark.loaded_columns
            or self._sources[b.cnt].down_since is not None
            or now - self._sources[b.cnt].persisted_at >= self.status_interval
        )

    def _source_failed(self, src: _Source, exc: Exception, now: float) -> str:
        message = (str(exc).strip() or type(exc).__name__).splitlines()[0][:500]
        src.failures += 1
        src.next_attempt = now + min(self.max_backoff_s, 0.1 * 2**src.failures)
        if src.down_since is None:
            src.down_since = now
            log.warning("source %s down: %s (retrying with backoff)", src.cnt, message)
        return message

    def _stats(self, now: float) -> dict[str, SourceStats]:
        return {cnt: SourceStats(rows_per_s=s.rate(now)) for cnt, s in self._sources.items()}

    def _after_write(self, batches: list[Batch], written, now: float) -> None:
        for b in batches:
            src = self._sources[b.cnt]
            self._watermarks[b.cnt] = b.watermark
            if src.down_since is not None:
                log.info("source %s back after %.1f s", b.cnt, now - src.down_since)
            src.down_since, src.failures, src.next_attempt = None, 0, 0.0
            src.loaded.append((now, written.inserted.get(b.cnt, 0)))
            req = b.request
            if req.count_rows:
                src.reconcile_due = False
                src.next_reconcile = now + self.reconcile_interval
                src.needs_ids = b.cnt in written.needs_ids
            if req.list_ids:
                src.needs_ids = False
                src.missing = written.missing.get(b.cnt, [])
            elif req.fetch_ids:
                src.missing = src.missing[len(req.fetch_ids) :]
