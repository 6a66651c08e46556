"""Slow jobs at the lowest CPU and I/O priority: their processes and their database sessions.

On two cores a full `dbt build` with tests, `dbt docs` or a HOMEPOS calibration beside the
loop shows up in freshness and endpoint latency (issue 12 measured p95 freshness 1.28 s at
1,000/s with the jobs on at normal priority). The job's own process tree is niced to 19 and
put in the idle I/O class when it starts (children inherit both). Most of a job's work is
done by the PostgreSQL backends serving it, so every session the job opens is named
`pulse-job-<name>` (libpq's PGAPPNAME, and dbt's `application_name` through
PULSE_WH_APPNAME in profiles.yml), and a watcher renices those backends while the job runs.
Renicing a backend needs the server on this machine and the right to lower its priority
(root, or the user the server runs as); otherwise the watcher says so once and the job goes
on at the backends' normal priority.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import psutil
import psycopg2

APP_PREFIX = "pulse-job-"
NICE = 19


def app_name(job: str) -> str:
    return APP_PREFIX + job


# A job's session runs its queries without parallel workers: the workers are new backends at
# normal priority until the watcher finds them (up to `interval` later), and the slow job's
# big scans (tests over every row, the reconciliation mart) would start one or two per query
# per dbt thread beside the loop. Its own backend, lowered, does the whole query instead.
JOB_PGOPTIONS = "-c max_parallel_workers_per_gather=0"


def job_env(job: str, env: dict[str, str]) -> dict[str, str]:
    """The job's environment: its sessions carry its name and use no parallel workers
    (libpq's PGOPTIONS; dbt's connections too, as profiles.yml sets no `options`)."""
    options = " ".join(o for o in (env.get("PGOPTIONS", ""), JOB_PGOPTIONS) if o)
    return {
        **env,
        "PGAPPNAME": app_name(job),
        "PULSE_WH_APPNAME": app_name(job),
        "PGOPTIONS": options,
    }


def lower(pid: int) -> bool:
    """Nice 19 and idle I/O for one process; False when not allowed or gone."""
    try:
        proc = psutil.Process(pid)
        if proc.nice() < NICE:
            proc.nice(NICE)
        if hasattr(psutil, "IOPRIO_CLASS_IDLE"):
            proc.ionice(psutil.IOPRIO_CLASS_IDLE)
        return True
    except (psutil.AccessDenied, psutil.NoSuchProcess, PermissionError):
        return False


class BackendWatcher:
    """While running, lowers the priority of every backend whose application_name is a job's."""

    def __init__(self, warehouse_url: str, warn: Callable[[str], None], interval: float = 0.5):
        self.url = warehouse_url
        self.warn = warn
        self.interval = interval
        self.lowered: set[int] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned = False

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="job-priority", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        conn = None
        while not self._stop.is_set():
            try:
                if conn is None or conn.closed:
                    conn = psycopg2.connect(self.url, application_name="pulse-priority")
                    conn.autocommit = True
                with conn.cursor() as cur:
                    cur.execute(
                        "select pid from pg_stat_activity where application_name like %s",
                        (APP_PREFIX + "%",),
                    )
                    pids = {r[0] for r in cur.fetchall()}
                for pid in pids - self.lowered:
                    if lower(pid):
                        self.lowered.add(pid)
                    elif not self._warned:
                        self._warned = True
                        self.warn(f"cannot lower the priority of backend {pid} (remote server?)")
                self.lowered &= pids  # forget sessions that ended
            except psycopg2.Error:
                conn = None  # the warehouse is down or restarting: try again next time
            self._stop.wait(self.interval)
        if conn is not None:
            conn.close()
