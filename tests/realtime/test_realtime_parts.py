"""The loop's small parts: event log, status line, job scheduler, the checker's comparison."""

from __future__ import annotations

import io
import json
import sys
import time

from pisa_pulse.realtime.check import compare
from pisa_pulse.realtime.events import EventLog, StatusLine
from pisa_pulse.realtime.jobs import Job, JobScheduler
from pisa_pulse.realtime.loop import LoopSettings, RealtimeLoop


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


class _Publisher:
    def publish_once(self):
        return True


class _Invocation:
    def __init__(self, ok=True, seconds=0.01):
        self.success, self.seconds, self.error, self.failures = ok, seconds, None, []


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

    # no minimum gap between dbt ticks here (dbt_max_share would space them by their length)
    settings = LoopSettings(dbt_interval=0.0, dbt_max_share=float("inf"))
    loop = RealtimeLoop(Loader(), Dbt(), _Publisher(), settings=settings)
    loop.tick()
    assert loop.stats.dbt_failures == 1 and loop.stats.tail_rows == 3
    loop.tick()
    assert loop.stats.dbt_ticks == 1 and loop.stats.tail_rows == 0


def test_scheduler_runs_jobs_on_their_interval_and_stops_a_running_one(tmp_path):
    events_path = tmp_path / "events.jsonl"
    events = EventLog(events_path)
    quick = Job("quick", [sys.executable, "-c", "print('ok')"], interval=0.2, first_after=0)
    slow = Job("slow", [sys.executable, "-c", "import time; time.sleep(60)"], 3600, 3.0)
    scheduler = JobScheduler([quick, slow], events, tmp_path / "logs")
    scheduler.start()
    deadline = time.monotonic() + 60
    while quick.runs < 2:  # the quick job repeats before the slow one is due
        assert time.monotonic() < deadline
        time.sleep(0.1)
    while not (scheduler.running == "slow" and scheduler._current is not None):
        assert time.monotonic() < deadline  # …then the slow one starts
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


def test_dbt_in_its_own_thread_never_blocks_loading_and_publishing():
    import threading

    from pisa_pulse.core.dbt import DbtInvocation
    from pisa_pulse.realtime.dbt_worker import DbtWorker

    release = threading.Event()
    published = []

    class SlowSession:
        runner = object()

        def parse(self):
            pass

        def tick(self):
            release.wait(30)  # a dbt tick that takes as long as the test wants
            return DbtInvocation(args=["run"], success=True, seconds=0.5)

        def close(self):
            pass

    class Loader:
        def tick(self):
            return _Result(4)

    class Publisher:
        def publish_once(self):
            published.append(time.monotonic())
            return True

    worker = DbtWorker(SlowSession(), parse_first=True)
    settings = LoopSettings(dbt_interval=0.0, dbt_overlap=True)
    loop = RealtimeLoop(Loader(), worker, Publisher(), settings=settings)
    try:
        deadline = time.monotonic() + 30
        while not worker.ready():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        for _ in range(5):  # the dbt tick is stuck, yet every loop tick loads and publishes
            done = loop.tick()
            assert done["rows"] == 4 and done["published"] is True
        assert len(published) == 5 and not worker.ready()
        assert loop.stats.tail_rows == 20
        release.set()
        while loop.stats.dbt_ticks == 0:
            assert time.monotonic() < deadline
            loop.tick()
            time.sleep(0.01)
        # the 4 rows the request covered leave the tail; rows loaded meanwhile stay in it
        assert loop.stats.tail_rows == loop.stats.rows - 4
    finally:
        release.set()
        worker.close()


def test_overload_keeps_the_last_publication_until_dbt_folds_the_tail():
    published = []

    class Worker:  # a DbtWorker that is always busy: dbt cannot keep up
        def ready(self):
            return False

        def request(self, tag=None):
            return False

        def collect(self):
            return []

    class Loader:
        def tick(self):
            return _Result(400)

    class Publisher:
        def publish_once(self):
            published.append(1)
            return True

    settings = LoopSettings(publish_tail_max=1_000, publish_interval=0)
    loop = RealtimeLoop(Loader(), Worker(), Publisher(), settings=settings)
    outcomes = [loop.tick()["published"] for _ in range(4)]
    assert outcomes == [True, True, "deferred", "deferred"]  # tails 400, 800, 1200, 1600
    assert len(published) == 2


def test_worker_without_overlap_finishes_the_dbt_tick_within_the_loop_tick():
    from pisa_pulse.core.dbt import DbtInvocation
    from pisa_pulse.realtime.dbt_worker import DbtWorker

    class Session:
        runner = object()

        def parse(self):
            pass

        def tick(self):
            time.sleep(0.2)
            return DbtInvocation(args=["run"], success=True, seconds=0.2)

        def close(self):
            pass

    class Loader:
        def tick(self):
            return _Result(7)

    worker = DbtWorker(Session(), parse_first=False)
    settings = LoopSettings(dbt_interval=0.0, dbt_overlap=False)
    loop = RealtimeLoop(Loader(), worker, _Publisher(), settings=settings)
    try:
        done = loop.tick()
        assert done["dbt"] == "done" and done["dbt_s"] >= 0.2
        assert loop.stats.dbt_ticks == 1 and loop.stats.tail_rows == 0
    finally:
        worker.close()


def test_dbt_ticks_take_at_most_their_share_of_the_time():
    class Loader:
        def tick(self):
            return _Result(5)

    class Dbt:
        calls = 0

        def tick(self):
            Dbt.calls += 1
            return _Invocation(True, seconds=0.5)

    settings = LoopSettings(dbt_interval=0.0, dbt_max_share=0.25)
    loop = RealtimeLoop(Loader(), Dbt(), _Publisher(), settings=settings)
    loop.tick()
    assert Dbt.calls == 1
    assert loop._dbt_gap() == 2.0  # a 0.5 s tick: the next one 2 s after its start
    loop.tick()
    assert Dbt.calls == 1
    loop._last_dbt -= 2.0
    loop.tick()
    assert Dbt.calls == 2


def test_loop_advances_before_publishing_and_dbt_leaves_the_model_to_it():
    order = []

    class Loader:
        def tick(self):
            order.append("load")
            return _Result(4)

    class Advancer:
        fail = False

        def advance(self, deletions):
            order.append("advance")
            if Advancer.fail:
                raise RuntimeError("warehouse gone")
            return 4

    class Session:
        selector = "realtime"

        def tick(self):
            order.append("dbt")
            return _Invocation(True)

    class Publisher:
        def publish_once(self):
            order.append("publish")
            return True

    session = Session()
    settings = LoopSettings(dbt_interval=0.0, dbt_max_share=float("inf"))
    loop = RealtimeLoop(Loader(), session, Publisher(), advancer=Advancer(), settings=settings)
    loop.tick()
    assert order == ["load", "advance", "publish", "dbt"]
    assert loop.stats.advances == 1 and loop.stats.uncomputed_rows == 0
    Advancer.fail = True
    for _ in range(3):
        loop.tick()
    assert loop.stats.advance_failures == 3
    assert session.selector == "realtime_with_indices"  # dbt computes the model meanwhile
    assert loop.stats.uncomputed_rows == 12
    Advancer.fail = False
    loop.tick()
    assert session.selector == "realtime" and loop.stats.uncomputed_rows == 0
