"""Slow jobs run at the lowest CPU and I/O priority, and so do their database sessions.

A real job subprocess opens a real PostgreSQL session (the test cluster runs on this
machine) and sleeps in it; the test reads the nice value of both processes from the kernel.
"""

from __future__ import annotations

import sys
import time

import psutil
import psycopg2

from pisa_pulse.realtime.events import EventLog
from pisa_pulse.realtime.jobs import Job, JobScheduler
from pisa_pulse.realtime.priority import NICE, app_name

SESSION = """
import os, sys, time, psycopg2
conn = psycopg2.connect(sys.argv[1])  # libpq names the session from PGAPPNAME
cur = conn.cursor()
cur.execute("show max_parallel_workers_per_gather")  # libpq's PGOPTIONS
print("parallel workers per gather:", cur.fetchone()[0], flush=True)
cur.execute("select pg_sleep(30)")
"""


def _backend(url: str, name: str) -> int | None:
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("select pid from pg_stat_activity where application_name = %s", (name,))
            row = cur.fetchone()
            return row[0] if row else None
    finally:
        conn.close()


def test_a_job_and_its_backend_run_at_the_lowest_priority(fresh_db, tmp_path):
    url = fresh_db("prio")
    events = EventLog(tmp_path / "events.jsonl")
    job = Job("build", [sys.executable, "-c", SESSION, url], interval=3600, first_after=0)
    scheduler = JobScheduler([job], events, tmp_path / "logs", warehouse_url=url)
    scheduler.start()
    try:
        deadline = time.monotonic() + 30
        backend = None
        while backend is None or psutil.Process(backend).nice() != NICE:
            assert time.monotonic() < deadline, (backend, scheduler.running)
            time.sleep(0.2)
            backend = _backend(url, app_name("build"))
        assert psutil.Process(scheduler._current.pid).nice() == NICE
        assert psutil.Process(backend).ionice().ioclass == psutil.IOPRIO_CLASS_IDLE
        # no parallel workers, which would start at normal priority
        log = (tmp_path / "logs" / "job-build.log").read_text()
        assert "parallel workers per gather: 0" in log, log
        # the loop's own sessions keep their priority
        other = psycopg2.connect(url, application_name="pulse-loop")
        pid = _backend(url, "pulse-loop")
        time.sleep(1.5)
        assert psutil.Process(pid).nice() < NICE
        other.close()
    finally:
        scheduler.stop(timeout=10)
        events.close()
