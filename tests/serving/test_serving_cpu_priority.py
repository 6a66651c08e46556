"""`pulse serve` answers Forage from a real-time event-loop thread; the threads it starts
(Datasette's SQL threads, where analysts' queries run) stay at normal priority; opting out
and the unprivileged case fall back to normal priority and say so (serving/cpu_priority.py)."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
import pytest

from pisa_pulse.bench import endpoints
from pisa_pulse.serving.cpu_priority import describe
from tests.support.datasette import start_serving


def _policies(pid: int) -> dict[int, str]:
    return {t.id: describe(t.id) for t in psutil.Process(pid).threads()}


def _serve(tmp_path: Path, env: dict[str, str] | None = None):
    db = tmp_path / "pulse.db"
    endpoints.write_sample(db, countries=5)
    return start_serving(db, tmp_path / "serve.log", env=env, ready="/forage/submissions")


@pytest.mark.skipif(os.geteuid() != 0, reason="real-time scheduling needs root here")
def test_event_loop_is_realtime_and_sql_threads_are_not(tmp_path):
    server, url = _serve(tmp_path)
    try:
        # An analyst's SQL runs on Datasette's executor threads, started by the loop thread.
        sql = httpx.get(url + "/pulse.json", params={"sql": "select count(*) from forage_escs"})
        assert sql.status_code == 200, sql.text
        assert httpx.get(url + "/forage/escs").status_code == 200
        policies = _policies(server.pid)
        assert policies[server.pid] == "fifo"  # the main thread runs uvicorn's event loop
        others = {tid: p for tid, p in policies.items() if tid != server.pid}
        assert others, "Datasette started no SQL thread"
        assert set(others.values()) == {"other"}, policies
        log = (tmp_path / "serve.log").read_text()
        assert "event loop at real-time priority" in log
    finally:
        server.terminate()
        server.wait(10)


def test_opting_out_keeps_normal_priority(tmp_path):
    server, url = _serve(tmp_path, env={"PULSE_SERVE_PRIORITY": "normal"})
    try:
        assert httpx.get(url + "/forage/escs").status_code == 200
        assert set(_policies(server.pid).values()) == {"other"}
        assert (
            "normal priority (PULSE_SERVE_PRIORITY=normal)" in (tmp_path / "serve.log").read_text()
        )
    finally:
        server.terminate()
        server.wait(10)


def test_a_bad_setting_stops_the_start(tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", "from pisa_pulse.serving.cpu_priority import favour_event_loop;"
         "favour_event_loop()"],
        env={**os.environ, "PULSE_SERVE_PRIORITY": "fast"}, capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode != 0
    assert "must be 'realtime' or 'normal'" in out.stderr


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv"), reason="drops root with setpriv"
)
def test_without_the_right_it_runs_at_normal_priority_and_says_so():
    user = pwd.getpwnam("nobody")
    out = subprocess.run(
        ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups",
         "--inh-caps=-all", "--bounding-set=-all", sys.executable, "-c",
         "import os; from pisa_pulse.serving.cpu_priority import favour_event_loop, describe;"
         "print(favour_event_loop()); print(describe(0))"],
        capture_output=True, text=True, cwd="/",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    line, policy = out.stdout.splitlines()
    assert "real-time scheduling not allowed" in line
    assert policy == "other"
