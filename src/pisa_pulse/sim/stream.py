"""A stream of submissions at a total rate, from writer threads in the calling process.

Each writer owns a share of the countries and of the rate. It follows a schedule
(row k is due when rate x elapsed time passes k, give or take half a row of
jitter); bursts pull up to 0.4 s of future rows forward, so the long-run rate is
exact. Due rows are grouped into one transaction per country (COPY). With
`hold_fraction` > 0 some transactions are held open for `hold_seconds` on a spare
connection before they commit, so commits come out of id and created_at order.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter, deque

import psycopg2

from pisa_pulse.sim import countries as cnts
from pisa_pulse.sim import rows
from pisa_pulse.sim.control import IdAllocator, connect
from pisa_pulse.sim.messiness import Messifier

log = logging.getLogger(__name__)

MAX_ROWS_PER_TRANSACTION = 50
MAX_HELD_PER_WRITER = 16
MAX_IDLE_SPARES_PER_WRITER = 8  # spare connections kept for the next held transaction
BURST_PROBABILITY_PER_S = 0.05  # about one burst every 20 s per writer
BURST_MAX_SECONDS = 0.4
MAX_BACKLOG_SECONDS = 2.0  # rows due longer ago than this are skipped, not caught up
TICK_MAX = 0.05  # seconds a writer sleeps at most between checks


class Stream:
    def __init__(
        self,
        settings,
        rate: float,
        *,
        countries=None,
        even: bool = False,
        writers: int = 4,
        seed: int | None = None,
        messiness: float | None = None,
        hold_fraction: float = 0.0,
        hold_seconds: float = 0.0,
        bursts: bool = True,
        connections: int = 100,
    ):
        self.settings = settings
        self.countries = cnts.resolve(countries, settings)
        self.rate = float(rate)
        self.even = even
        self.seed = seed
        self.messiness = messiness
        self.hold_fraction = hold_fraction
        self.hold_seconds = hold_seconds
        self.bursts = bursts
        self.n_writers = max(1, int(writers))
        self.connections = connections
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._paused = False
        self._committed: Counter[str] = Counter()
        self._transactions = 0
        self._errors = 0
        self._skipped = 0
        self._last_error: str | None = None
        self._recent: deque[tuple[float, int]] = deque()  # (commit time, rows) for current rate
        self._writers: list[_Writer] = []
        self._threads: list[threading.Thread] = []
        self.started_at: float | None = None
        self._ids: IdAllocator | None = None

    # -- control ---------------------------------------------------------------------------
    def start(self) -> Stream:
        rows.warm_up()
        rng = random.Random(self.seed)
        self._ids = IdAllocator(self.settings, random.Random(rng.random()))
        for w, (codes, share) in enumerate(self._assign()):
            writer = _Writer(self, w, codes, share, random.Random(rng.random()))
            self._writers.append(writer)
            thread = threading.Thread(target=writer.run, name=f"sim-writer-{w}", daemon=True)
            self._threads.append(thread)
        self.started_at = time.monotonic()
        for thread in self._threads:
            thread.start()
        return self

    def set_rate(self, rate: float) -> None:
        if rate < 0:
            raise ValueError("rate must be >= 0")
        with self._lock:
            self.rate = float(rate)
            for writer in self._writers:
                writer.reanchor(keep_progress=True)

    def pause(self) -> None:
        with self._lock:
            self._paused = True

    def resume(self) -> None:
        with self._lock:
            if self._paused:
                self._paused = False
                for writer in self._writers:
                    writer.reanchor(keep_progress=False)  # no catch-up flood after a pause

    @property
    def paused(self) -> bool:
        return self._paused

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the writers; held transactions are committed first, connections closed."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        if self._ids is not None:
            self._ids.close()

    def __enter__(self) -> Stream:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- reporting -------------------------------------------------------------------------
    def _record_commit(self, country: str, n: int) -> None:
        now = time.monotonic()
        with self._lock:
            self._committed[country] += n
            self._transactions += 1
            self._recent.append((now, n))

    def _record_skipped(self, n: int) -> None:
        with self._lock:
            self._skipped += n

    def _record_error(self, exc: Exception) -> None:
        with self._lock:
            self._errors += 1
            self._last_error = f"{type(exc).__name__}: {exc}".strip()[:300]

    def stats(self, window: float = 3.0) -> dict:
        now = time.monotonic()
        with self._lock:
            while self._recent and self._recent[0][0] < now - 60:
                self._recent.popleft()
            since = self.started_at or now
            span = min(window, max(now - since, 1e-9))
            recent = sum(n for t, n in self._recent if t >= now - span)
            return {
                "rows_committed": sum(self._committed.values()),
                "rows_by_country": dict(self._committed),
                "transactions_committed": self._transactions,
                "current_rate": recent / span if span > 0 else 0.0,
                "target_rate": self.rate,
                "paused": self._paused,
                "held_open": sum(len(w.held) for w in self._writers),
                "writers": self.n_writers,
                "countries": len(self.countries),
                "errors": self._errors,
                "rows_skipped_behind": self._skipped,
                "last_error": self._last_error,
                "running": any(t.is_alive() for t in self._threads),
                "uptime_s": now - since,
            }

    # -- planning --------------------------------------------------------------------------
    def _assign(self) -> list[tuple[list[str], float]]:
        """Countries and rate share per writer, keeping connections within the budget.

        Each country is served by k writers (k = budget // countries, at least 1), so a
        few countries get concurrent writers while 82 countries stay at ~82 connections.
        """
        n = self.n_writers
        k = max(1, min(n, self.connections // max(1, len(self.countries))))
        weights = cnts.weights(self.countries, self.even)
        total = sum(weights)
        plan: list[list[str]] = [[] for _ in range(n)]
        share = [0.0] * n
        for i, (code, w) in enumerate(zip(self.countries, weights, strict=True)):
            for j in range(k):
                target = (i + j) % n
                plan[target].append(code)
                share[target] += w / k / total
        return [(codes, s) for codes, s in zip(plan, share, strict=True) if codes] or [([], 0.0)]


class _Writer:
    """One writer thread: its countries, connections, schedule and held transactions."""

    def __init__(self, stream: Stream, index: int, codes: list[str], share: float, rng):
        self.stream = stream
        self.index = index
        self.codes = codes
        self.weights = cnts.weights(codes, stream.even)
        self.share = share
        self.rng = rng
        self.messifier = Messifier(stream.messiness, rng)
        self.conns: dict[str, object] = {}
        self.spares: dict[str, list] = {}
        self.held: list[tuple[float, str, object, int]] = []  # (deadline, country, conn, rows)
        self.emitted = 0.0
        self.anchor_time = time.monotonic()
        self.anchor_count = 0.0
        self.anchor_rate = stream.rate * share
        self.next_jitter = self.rng.uniform(-0.5, 0.5)

    # schedule: target(t) = anchor_count + anchor_rate * (t - anchor_time)
    def target(self, now: float) -> float:
        return self.anchor_count + self.anchor_rate * (now - self.anchor_time)

    def reanchor(self, keep_progress: bool) -> None:
        now = time.monotonic()
        self.anchor_count = max(self.target(now), self.emitted) if keep_progress else self.emitted
        self.anchor_time = now
        self.anchor_rate = self.stream.rate * self.share

    def run(self) -> None:
        stream = self.stream
        last_burst_check = time.monotonic()
        try:
            while not stream._stop.is_set():
                now = time.monotonic()
                self._commit_due_held(now)
                if stream._paused or not self.codes:
                    stream._stop.wait(TICK_MAX)
                    continue
                if stream.bursts and now - last_burst_check >= 1.0:
                    last_burst_check = now
                    if self.rng.random() < BURST_PROBABILITY_PER_S:
                        # pull future rows forward; the schedule then idles until it catches up
                        pull = self.rng.uniform(0.1, BURST_MAX_SECONDS)
                        self._write(int(self.anchor_rate * pull))
                due = self._due(now)
                if due:
                    self._write(due)
                stream._stop.wait(self._sleep_time(time.monotonic()))
        finally:
            self._shutdown()

    def _due(self, now: float) -> int:
        n = 0
        target = self.target(now)
        backlog = target - self.emitted - (self.anchor_rate * MAX_BACKLOG_SECONDS + 1)
        if backlog > 0:  # the machine cannot keep up: skip rows rather than flood later
            self.anchor_count -= backlog
            target -= backlog
            self.stream._record_skipped(int(backlog))
        while self.emitted + n + 1 + self.next_jitter <= target:
            n += 1
            self.next_jitter = self.rng.uniform(-0.5, 0.5)
        return n

    def _sleep_time(self, now: float) -> float:
        if self.anchor_rate <= 0:
            return TICK_MAX
        due_at = (
            self.anchor_time
            + (self.emitted + 1 + self.next_jitter - self.anchor_count) / self.anchor_rate
        )
        wait = due_at - now
        if self.held:
            wait = min(wait, min(h[0] for h in self.held) - now)
        return min(TICK_MAX, max(0.001, wait))

    def _write(self, n: int) -> None:
        if n <= 0:
            return
        self.emitted += n
        chosen = Counter(self.rng.choices(self.codes, weights=self.weights, k=n))
        for country, count in chosen.items():
            while count > 0:
                k = min(count, MAX_ROWS_PER_TRANSACTION)
                self._transaction(country, k)
                count -= k

    def _transaction(self, country: str, n: int) -> None:
        stream = self.stream
        hold = (
            stream.hold_fraction > 0
            and stream.hold_seconds > 0
            and len(self.held) < MAX_HELD_PER_WRITER
            and self.rng.random() < stream.hold_fraction
        )
        conn = None
        try:
            conn = self._spare(country) if hold else self._conn(country)
            batch = rows.copy_text(country, stream._ids.take(n), self.rng, self.messifier)
            with conn.cursor() as cur:
                rows.copy_rows(cur, batch)
            if hold:
                self.held.append((time.monotonic() + stream.hold_seconds, country, conn, n))
            else:
                conn.commit()
                stream._record_commit(country, n)
        except psycopg2.Error as exc:
            stream._record_error(exc)
            log.warning("writer %s: %s: %s", self.index, country, exc)
            if hold and conn is not None:
                conn.close()
            else:
                self._discard(country)
            stream._stop.wait(0.5)  # back off a little; the rows of this transaction are lost

    def _commit_due_held(self, now: float, everything: bool = False) -> None:
        keep = []
        for item in self.held:
            deadline, country, conn, n = item
            if not everything and deadline > now:
                keep.append(item)
                continue
            try:
                conn.commit()
                self.stream._record_commit(country, n)
                if sum(len(c) for c in self.spares.values()) < MAX_IDLE_SPARES_PER_WRITER:
                    self.spares.setdefault(country, []).append(conn)
                else:
                    conn.close()  # keep the connection count bounded with 82 countries
            except psycopg2.Error as exc:
                self.stream._record_error(exc)
                conn.close()
        self.held = keep

    def _conn(self, country: str):
        conn = self.conns.get(country)
        if conn is None or conn.closed:
            conn = self.conns[country] = connect(self.stream.settings.source_url(country))
        return conn

    def _spare(self, country: str):
        free = self.spares.setdefault(country, [])
        while free:
            conn = free.pop()
            if not conn.closed:
                return conn
        return connect(self.stream.settings.source_url(country))

    def _discard(self, country: str) -> None:
        conn = self.conns.pop(country, None)
        if conn is not None:
            conn.close()

    def _shutdown(self) -> None:
        self._commit_due_held(time.monotonic(), everything=True)
        for conn in list(self.conns.values()) + [c for cs in self.spares.values() for c in cs]:
            try:
                conn.close()
            except psycopg2.Error:
                pass
