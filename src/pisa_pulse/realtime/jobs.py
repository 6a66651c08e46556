"""Slow jobs on their own schedules, in subprocesses, never blocking the loop.

Each job is a command line run every `interval` seconds by one background thread; a job
still running when it is due again is not started twice. A job may also have a `trigger`
(polled every `trigger_every` seconds by the same thread): when it returns True the job is
due at once. The HOMEPOS calibration job ("calibrate") gets a data trigger when the
scheduler knows the warehouse: a country is calibrated as soon as it has the rows, and again
when it has grown (pulse/calibrate_homepos.CalibrationTrigger), not only by the clock.
Subprocesses (not threads) because dbt keeps process-global state and the loop's own dbt
runner lives in this process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pisa_pulse.realtime import priority
from pisa_pulse.realtime.events import EventLog


@dataclass
class Job:
    name: str
    argv: list[str]
    interval: float
    first_after: float  # seconds after start before the first run
    runs: int = 0
    failures: int = 0
    last_seconds: float | None = None
    last_ok: bool | None = None
    next_at: float = field(default=0.0)
    trigger: Callable[[], bool] | None = None
    trigger_every: float = 30.0
    triggered: int = 0
    trigger_at: float = field(default=0.0)


def pulse_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "pisa_pulse.cli", *args]


class JobScheduler:
    def __init__(
        self,
        jobs: list[Job],
        events: EventLog,
        log_dir: Path,
        env: dict | None = None,
        warehouse_url: str | None = None,
    ):
        self.jobs = jobs
        self.events = events
        self.log_dir = log_dir
        self.env = env
        # Jobs run at the lowest CPU and I/O priority, and so do their database sessions
        # when the warehouse is given (src/pisa_pulse/realtime/priority.py).
        self._backends = (
            priority.BackendWatcher(
                warehouse_url, lambda m: self.events.emit("job_priority", message=m)
            )
            if warehouse_url
            else None
        )
        if warehouse_url:
            for job in jobs:
                if job.name == "calibrate" and job.trigger is None:
                    from pisa_pulse.indices.calibrate import CalibrationTrigger

                    job.trigger = CalibrationTrigger(warehouse_url)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._current: subprocess.Popen | None = None
        self.running: str | None = None  # the name of the job running now

    def start(self) -> None:
        now = time.monotonic()
        for job in self.jobs:
            job.next_at = now + job.first_after
        self._thread = threading.Thread(target=self._run, name="realtime-jobs", daemon=True)
        self._thread.start()
        if self._backends is not None:
            self._backends.start()

    def _run(self) -> None:
        # One job at a time: the machine is small and the loop must keep its share of it.
        while not self._stop.is_set():
            self._poll_triggers()
            due = [j for j in self.jobs if j.next_at <= time.monotonic()]
            if not due:
                self._stop.wait(1.0)
                continue
            job = min(due, key=lambda j: j.next_at)
            self._execute(job)
            job.next_at = time.monotonic() + job.interval

    def _poll_triggers(self) -> None:
        now = time.monotonic()
        for job in self.jobs:
            if job.trigger is None or job.trigger_at > now:
                continue
            job.trigger_at = now + job.trigger_every
            try:
                fired = job.trigger()
            except Exception as exc:  # a failing trigger leaves the clock schedule in place
                self.events.emit("job_trigger_error", job=job.name, error=str(exc)[:300])
                continue
            if fired and job.next_at > now:
                job.next_at = now
                job.triggered += 1
                due = getattr(job.trigger, "due", None)
                self.events.emit("job_triggered", job=job.name, countries=due)

    def _execute(self, job: Job) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        self.running = job.name
        self.events.emit("job_start", job=job.name, argv=job.argv)
        with open(self.log_dir / f"job-{job.name}.log", "ab") as out:
            try:
                env = priority.job_env(job.name, self.env or dict(os.environ))
                self._current = subprocess.Popen(
                    job.argv, stdout=out, stderr=subprocess.STDOUT, env=env
                )
                priority.lower(self._current.pid)  # before it starts its own children
                code = self._current.wait()
            except OSError as exc:
                code = -1
                self.events.emit("job_error", job=job.name, error=str(exc))
            finally:
                self._current = None
                self.running = None
        job.runs += 1
        job.last_seconds = time.monotonic() - started
        job.last_ok = code == 0
        if code != 0:
            job.failures += 1
        self.events.emit(
            "job_end", job=job.name, ok=code == 0, code=code, seconds=round(job.last_seconds, 3)
        )

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        proc = self._current
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._backends is not None:
            self._backends.stop()
