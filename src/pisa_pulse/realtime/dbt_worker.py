"""dbt ticks in one background thread, so that loading and publishing never wait for dbt.

Measured on the shared 2-core machine: a dbt tick of the real-time selection takes 0.5-4 s
(median 3.5 s under a load average of 14), and while it ran inside the loop, nothing was
loaded or published: freshness was bounded by dbt after all. With the serving views reading
the tail live, dbt only has to keep the tail short, which it can do beside the loop.

Safe to overlap with the loader: raw rows are only ever added with a larger `_load_seq`
(one serial writer), each state model's rows and high-water marks commit in one
transaction, and the publisher reads state + tail from one snapshot. dbt itself (process-
global state) is only ever used by this thread once the loop runs.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from pisa_pulse.core.dbt import DbtInvocation


class DbtWorker:
    def __init__(self, session, parse_first: bool = True):
        self.session = session
        self._parsed = not parse_first
        self._busy = False
        self._want = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._finished: deque = deque()
        self._thread = threading.Thread(target=self._run, name="dbt-worker", daemon=True)
        self._thread.start()

    def ready(self) -> bool:
        """Parsed and idle: a tick may be requested."""
        with self._lock:
            return self._parsed and not self._busy

    def request(self, tag=None) -> bool:
        """Start one tick in the background (False when busy or still parsing)."""
        with self._lock:
            if not self._parsed or self._busy:
                return False
            self._busy = True
            self._tag = tag
        self._want.set()
        return True

    def wait_idle(self, poll: float = 0.005) -> None:
        """Block until no tick is running."""
        while True:
            with self._lock:
                if not self._busy:
                    return
            time.sleep(poll)

    def collect(self) -> list[tuple[object, DbtInvocation]]:
        """(tag, invocation) of every tick finished since the last call."""
        with self._lock:
            out = list(self._finished)
            self._finished.clear()
        return out

    def _run(self) -> None:
        if not self._parsed:
            try:
                self.session.parse()
            except Exception:  # the first tick parses again (the warehouse may be back)
                self.session.runner = None
            with self._lock:
                self._parsed = True
        while not self._stop.is_set():
            if not self._want.wait(0.2):
                continue
            self._want.clear()
            started = time.perf_counter()
            try:
                invocation = self.session.tick()
            except Exception as exc:  # never let the worker die
                invocation = DbtInvocation(
                    args=["run"],
                    success=False,
                    seconds=time.perf_counter() - started,
                    error=f"{type(exc).__name__}: {exc}",
                )
            with self._lock:
                self._finished.append((self._tag, invocation))
                self._busy = False

    def close(self, timeout: float = 120.0) -> None:
        """Let a running tick finish (dbt is not interruptible safely), then close the session."""
        self._stop.set()
        self._want.set()
        self._thread.join(timeout)
        self.session.close()
