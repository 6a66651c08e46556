"""The real-time loop: loader tick → advance → publish, with dbt ticks beside it.

Why this order: the serving views are the additive state *plus the tail* of rows beyond the
state's high-water mark, so the published numbers are exact as soon as the loader has
committed a row. Right after each loader tick the loop advances int_student_indices (each
new row's indices computed once, src/pisa_pulse/realtime/advance.py) and publishes: freshness is
the loader's and the publisher's, not dbt's. dbt's ticks fold the tail into the additive
state so that the tail stays short; they run in a worker thread (DbtWorker), only when the
loader brought rows or deletions, and at most every `dbt_interval` seconds.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import psycopg2

from pisa_pulse.core.dbt import REALTIME, REALTIME_WITH_INDICES
from pisa_pulse.realtime.events import EventLog, StatusLine


@dataclass
class LoopSettings:
    loader_interval: float = 0.1  # the shortest loader tick period (an idle loop sleeps)
    publish_interval: float = 0.5  # republish at least this often (time buckets, lag)
    dbt_interval: float = 1.0  # the shortest time between two dbt ticks
    # dbt's share of the time at most: after a tick of d seconds the next one waits until
    # d / dbt_max_share after its start. Under heavy load a dbt tick takes 1-2 s (a fresh
    # connection, cold caches, Python), and back-to-back ticks took a core of a 2-core
    # machine from loading and advancing; the longer tail they leave costs the publisher
    # little because its indices are already computed.
    dbt_max_share: float = 0.25
    dbt_tail_rows: int = 500  # a tail this long is folded into the state before publishing
    publish_tail_max: int = 3_000  # no publishing past this tail (overload): see the docs
    # True: dbt overlaps loading and publishing. False: the loop waits for each dbt tick (it
    # still runs in the worker so that a restart's parse does not block the loop). Since the
    # loop advances int_student_indices itself, overlapping measures far better (docs/realtime.md).
    dbt_overlap: bool = True
    warehouse_backoff_max: float = 2.0
    lag_poll_interval: float = 2.0


@dataclass
class LoopStats:
    """Counters and recent timings, for the status line, the logs and the benchmarks."""

    ticks: int = 0
    rows: int = 0
    deleted: int = 0
    dbt_ticks: int = 0
    dbt_failures: int = 0
    publishes: int = 0
    publish_failures: int = 0
    warehouse_errors: int = 0
    tail_rows: int = 0  # rows loaded since the last successful dbt tick
    uncomputed_rows: int = 0  # rows loaded since the last advance of int_student_indices
    advances: int = 0
    advance_failures: int = 0
    lag_ms: int | None = None
    loader_s: deque = field(default_factory=lambda: deque(maxlen=200))
    publish_s: deque = field(default_factory=lambda: deque(maxlen=200))
    dbt_s: deque = field(default_factory=lambda: deque(maxlen=200))
    advance_s: deque = field(default_factory=lambda: deque(maxlen=200))
    loaded: deque = field(default_factory=lambda: deque(maxlen=2_000))  # (monotonic, rows)

    def rate(self, window: float = 10.0) -> float:
        now = time.monotonic()
        recent = [n for t, n in self.loaded if t >= now - window]
        return sum(recent) / window

    @staticmethod
    def median(values) -> float | None:
        return statistics.median(values) if values else None


class RealtimeLoop:
    """Drives a loader, a dbt session and a publisher (any objects with their methods).

    loader.tick() -> TickResult (.total_rows, .deleted), raising WarehouseUnavailable;
    dbt.tick() -> DbtInvocation (.success, .seconds); publisher.publish_once() -> bool;
    advancer.advance(deletions) -> rows | None (optional: see src/pisa_pulse/realtime/advance.py).
    """

    def __init__(
        self,
        loader,
        dbt,
        publisher,
        *,
        advancer=None,
        warehouse_url: str | None = None,
        settings: LoopSettings | None = None,
        events: EventLog | None = None,
        status: StatusLine | None = None,
    ):
        self.loader = loader
        self.dbt = dbt
        self.publisher = publisher
        self.advancer = advancer
        self._advance_deletions = True  # apply tombstones on the first advance
        self._advance_failing = 0  # consecutive failures
        self._dbt_selector_lifted = False  # see _dbt_takes_the_model
        self.warehouse_url = warehouse_url
        self.settings = settings or LoopSettings()
        self.events = events or EventLog(None)
        self.status = status or StatusLine(stream=_NullStream())
        self.stats = LoopStats()
        self.stop_event = threading.Event()
        self._last_publish = float("-inf")
        self._last_dbt = float("-inf")
        self._last_lag_poll = float("-inf")
        self._backoff = 0.0
        self._lag_conn = None

    # -- one tick ---------------------------------------------------------------------------
    def tick(self) -> dict:
        """One iteration; returns what it did (for logs and tests)."""
        from pisa_pulse.loader.engine import WarehouseUnavailable

        started = time.monotonic()
        done: dict = {"rows": 0, "deleted": 0, "published": None, "dbt": None}
        try:
            result = self.loader.tick()
        except WarehouseUnavailable as exc:
            self.stats.warehouse_errors += 1
            self._backoff = min(self.settings.warehouse_backoff_max, max(0.2, self._backoff * 2))
            self.events.emit("warehouse_unavailable", error=str(exc)[:300], retry_in=self._backoff)
            done["warehouse_unavailable"] = True
            done["wait"] = self._backoff
            return done
        self._backoff = 0.0
        loader_s = time.monotonic() - started
        rows, deleted = result.total_rows, sum(result.deleted.values())
        self.stats.ticks += 1
        self.stats.rows += rows
        self.stats.deleted += deleted
        self.stats.tail_rows += rows + deleted
        self.stats.uncomputed_rows += rows + deleted
        self.stats.loader_s.append(loader_s)
        self.stats.loaded.append((started, rows))
        done.update(rows=rows, deleted=deleted, loader_s=loader_s)
        if self.advancer is not None and (self.stats.uncomputed_rows or self._advance_deletions):
            self._timed(done, "advanced", lambda: self._advance(bool(deleted)))

        if hasattr(self.dbt, "request"):  # dbt in its own thread (DbtWorker)
            self._collect_dbt()
            wait = not self.settings.dbt_overlap
            if wait and self.stats.tail_rows >= self.settings.dbt_tail_rows:
                self._dbt_in_worker(done, wait=True)  # catching up: fold the tail in first
            now = time.monotonic()
            if self._uncomputed() > self.settings.publish_tail_max:
                # Overloaded (or catching up): every serving view would compute these rows'
                # indices on every publish. Keep the last publication until they are computed.
                done["published"] = "deferred"
            elif rows or deleted or now - self._last_publish >= self.settings.publish_interval:
                self._timed(done, "published", self._publish)
            if (
                done["dbt"] is None
                and self.stats.tail_rows
                and time.monotonic() - self._last_dbt >= self._dbt_gap()
            ):
                self._dbt_in_worker(done, wait=wait)
            return self._finish(done, result, started, loader_s)

        # Catching up (after a restart or an outage): a long tail would be recomputed by every
        # serving view on every publish, so fold it into the state first.
        dbt_ready = getattr(self.dbt, "ready", lambda: True)()
        if dbt_ready and self.stats.tail_rows >= self.settings.dbt_tail_rows:
            self._timed(done, "dbt", self._dbt_tick)
        now = time.monotonic()
        if rows or deleted or now - self._last_publish >= self.settings.publish_interval:
            self._timed(done, "published", self._publish)
        now = time.monotonic()
        if (
            done["dbt"] is None
            and self.stats.tail_rows
            and (now - self._last_dbt >= self._dbt_gap())
        ):
            self._timed(done, "dbt", self._dbt_tick)

        return self._finish(done, result, started, loader_s)

    def _finish(self, done: dict, result, started: float, loader_s: float) -> dict:
        rows, deleted = done["rows"], done["deleted"]
        done["tick_s"] = time.monotonic() - started
        if "advanced_s" in done:
            self.stats.advance_s.append(done["advanced_s"])
        if rows or deleted or done["dbt"] is not None:
            self.events.emit(
                "tick",
                rows=rows,
                deleted=deleted,
                down=list(result.down),
                loader_s=round(loader_s, 4),
                advance_s=round(done["advanced_s"], 4) if "advanced_s" in done else None,
                publish_s=round(done.get("published_s", 0.0), 4),
                dbt_s=round(done["dbt_s"], 4) if "dbt_s" in done else None,
                tick_s=round(done["tick_s"], 4),
                tail_rows=self.stats.tail_rows,
            )
        return done

    @staticmethod
    def _timed(done: dict, key: str, step) -> None:
        started = time.monotonic()
        done[key] = step()
        done[f"{key}_s"] = time.monotonic() - started

    def _dbt_gap(self) -> float:
        """Seconds from one dbt tick's start to the next (see LoopSettings.dbt_max_share)."""
        last = self.stats.dbt_s[-1] if self.stats.dbt_s else 0.0
        return max(self.settings.dbt_interval, last / self.settings.dbt_max_share)

    def _uncomputed(self) -> int:
        """Rows whose indices a publication would compute live (none once advanced)."""
        if self.advancer is None:
            return self.stats.tail_rows
        return min(self.stats.tail_rows, self.stats.uncomputed_rows)

    def _advance(self, deletions: bool) -> int | None:
        """Bring int_student_indices up to the loader (rows upserted; None: skipped/failed)."""
        try:
            upserted = self.advancer.advance(deletions or self._advance_deletions)
        except Exception as exc:  # the warehouse or the model may be gone for a moment
            self.stats.advance_failures += 1
            self._advance_deletions = True
            self._advance_failing += 1
            self.events.emit("advance_failed", error=f"{type(exc).__name__}: {exc}"[:300])
            if self._advance_failing == 3:  # dbt's ticks take the model back meanwhile
                self._dbt_takes_the_model(True)
            return None
        if self._advance_failing >= 3:
            self._dbt_takes_the_model(False)
        self._advance_failing = 0
        if upserted is not None:
            self.stats.advances += 1
            self.stats.uncomputed_rows = 0
            self._advance_deletions = False
        elif deletions:
            self._advance_deletions = True  # skipped: apply the tombstones next time
        return upserted

    def _dbt_takes_the_model(self, take: bool) -> None:
        """While the advance fails, dbt's ticks compute int_student_indices instead: the
        session's selector goes from `realtime` to `realtime_with_indices` (selectors.yml)
        and back once the advance works again."""
        session = getattr(self.dbt, "session", self.dbt)
        if getattr(session, "selector", None) not in (REALTIME, REALTIME_WITH_INDICES):
            return
        if take and session.selector == REALTIME:
            self._dbt_selector_lifted = True
            session.selector = REALTIME_WITH_INDICES
        elif not take and self._dbt_selector_lifted:
            self._dbt_selector_lifted = False
            session.selector = REALTIME
        self.events.emit("dbt_selector", selector=session.selector)

    def _publish(self) -> bool | None:
        started = time.monotonic()
        try:
            changed = self.publisher.publish_once()
        except Exception as exc:  # the warehouse or a view may be gone for a moment
            self.stats.publish_failures += 1
            self.events.emit("publish_failed", error=f"{type(exc).__name__}: {exc}"[:300])
            return None
        self._last_publish = time.monotonic()
        self.stats.publishes += 1
        self.stats.publish_s.append(self._last_publish - started)
        return changed

    def _dbt_in_worker(self, done: dict, wait: bool) -> None:
        """Request a dbt tick from the worker; with `wait`, block until it is done."""
        started = time.monotonic()
        if not self.dbt.request(self.stats.tail_rows):
            return  # still parsing (restart) or busy (overlap mode)
        self._last_dbt = time.monotonic()
        done["dbt"] = "requested"
        if wait:
            self.dbt.wait_idle()
            self._collect_dbt()
            done["dbt"] = "done"
            done["dbt_s"] = time.monotonic() - started

    def _collect_dbt(self) -> None:
        """Account for the background dbt ticks that finished since the last loop tick."""
        for tail_at_request, invocation in self.dbt.collect():
            # rows loaded while dbt ran may or may not be in the state: keep them in the tail
            self._account_dbt(invocation, folded_rows=tail_at_request or 0)
            self.events.emit("dbt_tick", ok=invocation.success, dbt_s=round(invocation.seconds, 4))

    def _dbt_tick(self) -> bool:
        invocation = self.dbt.tick()
        self._last_dbt = time.monotonic()
        self._account_dbt(invocation, folded_rows=self.stats.tail_rows)
        return invocation.success

    def _account_dbt(self, invocation, folded_rows: int) -> None:
        """Count a finished dbt tick; a successful one folded `folded_rows` of the tail."""
        self.stats.dbt_s.append(invocation.seconds)
        if invocation.success:
            self.stats.dbt_ticks += 1
            self.stats.tail_rows = max(0, self.stats.tail_rows - folded_rows)
        else:
            self.stats.dbt_failures += 1
            self.events.emit(
                "dbt_failed",
                seconds=round(invocation.seconds, 3),
                error=invocation.error,
                failures=invocation.failures[:5],
            )

    # -- the loop ---------------------------------------------------------------------------
    def run(self, max_seconds: float | None = None) -> None:
        """Tick until stop() (or max_seconds); a slow tick is followed at once by the next."""
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        self.events.emit("loop_start")
        while not self.stop_event.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                break
            started = time.monotonic()
            done = self.tick()
            self._poll_lag()
            self.status.show(self.status_text())
            wait = done.get("wait", self.settings.loader_interval)
            self.stop_event.wait(max(0.0, wait - (time.monotonic() - started)))
        self.status.show(self.status_text(), force=True)
        self.status.done()
        self.events.emit("loop_stop", **self.summary())

    def stop(self) -> None:
        self.stop_event.set()

    def _poll_lag(self) -> None:
        """The loader's own lag (now − newest created_at loaded), for the status line."""
        now = time.monotonic()
        if not self.warehouse_url or now - self._last_lag_poll < self.settings.lag_poll_interval:
            return
        self._last_lag_poll = now
        try:
            if self._lag_conn is None or self._lag_conn.closed:
                self._lag_conn = psycopg2.connect(self.warehouse_url, connect_timeout=2)
                self._lag_conn.autocommit = True
            with self._lag_conn.cursor() as cur:
                cur.execute("select max(lag_ms) from raw.loader_sources where status = 'ok'")
                (lag,) = cur.fetchone()
            self.stats.lag_ms = None if lag is None else int(lag)
        except psycopg2.Error:
            if self._lag_conn is not None:
                self._lag_conn.close()
            self._lag_conn = None

    def status_text(self) -> str:
        s = self.stats

        def ms(values) -> str:
            m = s.median(values)
            return "-" if m is None else f"{m * 1000:.0f}ms"

        lag = "-" if s.lag_ms is None else f"{s.lag_ms}ms"
        return (
            f"pulse run | {s.rate():7.1f} rows/s | loaded {s.rows:,} | lag {lag} | "
            f"load {ms(s.loader_s)} advance {ms(s.advance_s)} publish {ms(s.publish_s)} "
            f"dbt {ms(s.dbt_s)} | "
            f"tail {s.tail_rows:,} | dbt ticks {s.dbt_ticks:,}"
            + (f" ({s.dbt_failures} failed)" if s.dbt_failures else "")
            + (f" | warehouse errors {s.warehouse_errors}" if s.warehouse_errors else "")
        )

    def summary(self) -> dict:
        s = self.stats
        return {
            "ticks": s.ticks,
            "rows": s.rows,
            "deleted": s.deleted,
            "dbt_ticks": s.dbt_ticks,
            "dbt_failures": s.dbt_failures,
            "publishes": s.publishes,
            "publish_failures": s.publish_failures,
            "advances": s.advances,
            "advance_failures": s.advance_failures,
            "warehouse_errors": s.warehouse_errors,
        }

    def close(self) -> None:
        if self._lag_conn is not None:
            self._lag_conn.close()
            self._lag_conn = None


class _NullStream:
    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> None:
        pass

    def flush(self) -> None:
        pass
