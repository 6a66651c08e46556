"""The loop's small parts: event log, status line, job scheduler, the checker's comparison."""

from __future__ import annotations

import io
import json
import sys
import time

from pulse.realtime.check import compare
from pulse.realtime.events import EventLog, StatusLine
from pulse.realtime.jobs import Job, JobScheduler
from pulse.realtime.loop import LoopSettings, RealtimeLoop


def test_event_log_writes_one_json_object_per_line(tmp_path):
    log = EventLog(tmp_path / "logs" / "realtime.jsonl")
    log.emit("tick", rows=3, tick_s=0.25)
    log.emit("dbt_failed", error="boom")
    log.close()
    records = [json.loads(line) for line in (tmp_path / "logs" / "realtime.jsonl").open()]
    assert [r["event"] for r in records] == ["tick", "dbt_failed"]
    assert records[0]["rows"] == 3 and records[1]["error"] == "boom"
    assert all(abs(r["ts"] - time.time()) < 60 for r in records)


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_status_line_only_on_a_terminal_and_rewritten_in_place():
    tty, pipe = _Tty(), io.StringIO()
    StatusLine(pipe).show("hello", force=True)
    assert pipe.getvalue() == ""
    line = StatusLine(tty, min_interval=0)
    line.show("a long first line", force=True)
    line.show("short", force=True)
    line.done()
    parts = tty.getvalue().split("\r")
    assert parts[1].startswith("a long first line")
    assert parts[2].startswith("short") and len(parts[2].rstrip("\n")) == len("a long first line")


class _Result:
    def __init__(self, rows=0, deleted=None):
        self.total_rows = rows
        self.deleted = deleted or {}
        self.down = []


class _Invocation:
    def __init__(self, ok=True):
        self.success, self.seconds, self.error, self.failures = ok, 0.01, None, []


def test_loop_order_publish_after_load_and_dbt_only_for_new_rows():
    calls = []
    batches = [5, 0, 0, 700, 0]

    class Loader:
        def tick(self):
            calls.append("load")
            return _Result(batches.pop(0) if batches else 0)

    class Dbt:
        def tick(self):
            calls.append("dbt")
            return _Invocation()

    class Publisher:
        def publish_once(self):
            calls.append("publish")
            return True

    loop = RealtimeLoop(
        Loader(),
        Dbt(),
        Publisher(),
        settings=LoopSettings(dbt_interval=0.0, publish_interval=3600, dbt_tail_rows=500),
    )
    for _ in range(5):
        loop.tick()
    # 5 rows: publish (fresh from the tail), then dbt; idle ticks: nothing; 700 rows (a long
    # tail): dbt first, then publish.
    assert calls == [
        "load", "publish", "dbt",
        "load",
        "load",
        "load", "dbt", "publish",
        "load",
    ]  # fmt: skip
    assert loop.stats.rows == 705 and loop.stats.dbt_ticks == 2 and loop.stats.tail_rows == 0


def test_failed_dbt_tick_keeps_the_tail_for_the_next_try():
    outcomes = [False, True]

    class Loader:
        def tick(self):
            return _Result(3)

    class Dbt:
        def tick(self):
            return _Invocation(outcomes.pop(0))

    class Publisher:
        def publish_once(self):
            return True

    loop = RealtimeLoop(Loader(), Dbt(), Publisher(), settings=LoopSettings(dbt_interval=0.0))
    loop.tick()
    assert loop.stats.dbt_failures == 1 and loop.stats.tail_rows == 3
    loop.tick()
    assert loop.stats.dbt_ticks == 1 and loop.stats.tail_rows == 0


def test_scheduler_runs_jobs_on_their_interval_and_stops_a_running_one(tmp_path):
    events_path = tmp_path / "events.jsonl"
    events = EventLog(events_path)
    quick = Job("quick", [sys.executable, "-c", "print('ok')"], interval=0.2, first_after=0)
    slow = Job("slow", [sys.executable, "-c", "import time; time.sleep(60)"], 3600, 0.5)
    scheduler = JobScheduler([quick, slow], events, tmp_path / "logs")
    scheduler.start()
    deadline = time.monotonic() + 30
    while slow.runs == 0 and scheduler._current is None or quick.runs < 2:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    started = time.monotonic()
    scheduler.stop(timeout=10)
    assert time.monotonic() - started < 10  # the 60 s job was terminated, not waited for
    events.close()
    assert quick.runs >= 2 and quick.last_ok
    assert "ok" in (tmp_path / "logs" / "job-quick.log").read_text()
    names = [json.loads(line)["event"] for line in events_path.open()]
    assert names.count("job_end") >= 2


def _answers(count=10, hours=20, value=0.123, x=2.5, over_time=None):
    series = over_time or [{"x": "10:00", "y": 3}, {"x": "11:00", "y": 7}]
    return {
        "submissions": {"count": count},
        "submissions_over_time": {"datasets": [{"id": "Submissions", "data": series}]},
        "learning_hours_per_week": {"datasets": [{"country": "FRA", "hours": hours}]},
        "escs": {"datasets": [{"id": "FRA", "value": value}]},
        "early_education_and_belonging": {
            "datasets": [{"id": "FRA", "data": [{"x": x, "y": 0.1, "submissions": count}]}]
        },
    }


def test_compare_accepts_equal_answers_and_names_every_difference():
    assert all(not p for p in compare(_answers(), _answers()).values())
    problems = compare(_answers(count=11, value=0.124), _answers())
    assert problems["submissions"] and problems["escs"]
    assert problems["early_education_and_belonging"]
    assert not problems["learning_hours_per_week"]


def test_compare_time_series_on_common_buckets_only():
    later = [{"x": "11:00", "y": 7}, {"x": "12:00", "y": 1}]  # a bucket later, same overlap
    assert not compare(_answers(over_time=later), _answers())["submissions_over_time"]
    wrong = [{"x": "10:00", "y": 3}, {"x": "11:00", "y": 8}]
    assert compare(_answers(over_time=wrong), _answers())["submissions_over_time"]
