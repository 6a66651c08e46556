"""HOMEPOS calibration triggered by the data, not only by the clock (issue 14).

The trigger counts a country's scored rows in a real PostgreSQL database (a table standing in
for intermediate.int_student_indices with the three columns it reads) and reads
calibration.homepos_params; the scheduler runs a real job subprocess when it fires.
"""

from __future__ import annotations

import sys
import time

import psycopg2

from pisa_pulse.indices.calibrate import CalibrationTrigger
from pisa_pulse.indices.calibration_tables import ensure_calibration_tables
from pisa_pulse.indices.homepos_model import block_countries
from pisa_pulse.realtime.events import EventLog
from pisa_pulse.realtime.jobs import Job, JobScheduler


def _world(url: str) -> None:
    conn = psycopg2.connect(url)
    with conn, conn.cursor() as cur:
        cur.execute(
            "create schema intermediate; create table intermediate.int_student_indices"
            " (cnt text, homepos_computed double precision, homepos_official double precision)"
        )
    conn.close()
    assert ensure_calibration_tables(url)  # by dbt run-operation, as before a first dbt run


def _add_rows(url: str, cnt: str, n: int, official: bool = False, scorable: bool = True) -> None:
    conn = psycopg2.connect(url)
    with conn, conn.cursor() as cur:
        cur.execute(
            "insert into intermediate.int_student_indices"
            " select %s, %s, %s from generate_series(1, %s)",
            (cnt, 0.4 if scorable else None, 0.5 if official else None, n),
        )
    conn.close()


def _calibrated(url: str, cnt: str, method: str, n_rows: int) -> None:
    conn = psycopg2.connect(url)
    with conn, conn.cursor() as cur:
        cur.execute(
            "insert into calibration.homepos_params (cnt, version, method, item, a, n_rows)"
            " select %s, coalesce(max(version), 0) + 1, %s, 'ST011Q01TA', 1, %s"
            " from calibration.homepos_params where cnt = %s",
            (cnt, method, n_rows, cnt),
        )
    conn.close()


def test_trigger_fires_at_the_threshold_and_again_when_grown(fresh_db):
    url = fresh_db("trig")
    _world(url)
    seeded = block_countries()[0]
    trigger = CalibrationTrigger(url, min_rows=100, min_official=30, growth=2.0)
    _add_rows(url, "QAA", 99)
    _add_rows(url, seeded, 500)
    assert not trigger()  # below the threshold; a seeded country never calibrates
    _add_rows(url, "QAA", 1)
    assert trigger() and trigger.due == ["QAA"]
    assert not trigger()  # fired once for 100 rows: not again before it has grown
    _calibrated(url, "QAA", "mml", 100)
    _add_rows(url, "QAA", 99)
    assert not trigger()
    _add_rows(url, "QAA", 1)
    assert trigger() and trigger.due == ["QAA"]  # grown x2 since the calibration
    # Official values arrive: fitting to them is a new method, due at once.
    _add_rows(url, "QBB", 30, official=True)
    assert trigger() and trigger.due == ["QBB"]


def test_trigger_counts_scorable_rows_as_the_calibration_does(fresh_db):
    """Rows with fewer than 3 valid items (no computed HOMEPOS) do not count: the job would
    decline the country (too_few_rows) and the trigger would then wait for twice the rows."""
    url = fresh_db("trig")
    _world(url)
    trigger = CalibrationTrigger(url, min_rows=100, min_official=30, growth=2.0)
    _add_rows(url, "QCC", 95)
    _add_rows(url, "QCC", 10, scorable=False)
    assert not trigger()  # 105 rows, 95 scorable
    _add_rows(url, "QCC", 5)
    assert trigger() and trigger.due == ["QCC"]


def test_trigger_before_the_first_build(fresh_db):
    url = fresh_db("trig")  # no intermediate schema yet: nothing scored, nothing due
    assert not CalibrationTrigger(url, min_rows=100)()


def test_scheduler_runs_a_triggered_job_before_its_clock(tmp_path):
    flag = tmp_path / "go"
    out = tmp_path / "ran"
    events = EventLog(tmp_path / "events.jsonl")
    job = Job(
        "calibrate",
        [sys.executable, "-c", f"open({str(out)!r}, 'w').write('ok')"],
        interval=3600,
        first_after=3600,
        trigger=flag.exists,
        trigger_every=0.2,
    )
    scheduler = JobScheduler([job], events, tmp_path / "logs")
    scheduler.start()
    try:
        time.sleep(1.5)
        assert job.runs == 0 and not out.exists()  # the clock says: in an hour
        flag.touch()
        deadline = time.monotonic() + 20
        while job.runs == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert job.runs == 1 and job.triggered == 1 and out.read_text() == "ok"
    finally:
        scheduler.stop()
