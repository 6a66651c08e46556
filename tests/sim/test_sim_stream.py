"""The stream: rate, pause/resume/empty, out-of-order commits, and the CLI's control channel."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from pisa_pulse.cli.main import main
from pisa_pulse.sim import api
from tests.support.sim_world import fetch


@pytest.fixture
def sim_settings(pulse_env):
    """Settings whose application databases are private to the test; dropped afterwards."""
    yield pulse_env
    api.drop_databases(pulse_env)


def _total(settings, codes) -> int:
    return sum(api.count_rows(settings, codes).values())


def test_rate_holds_within_10_percent_over_10_s_at_50_per_s(sim_settings):
    codes = ["FRA", "ITA", "ALB"]
    api.setup_databases(sim_settings, codes)
    with api.Stream(sim_settings, 50, countries=codes, seed=1) as stream:
        time.sleep(1.5)  # warm up: connections opened, first rows in
        t0, c0 = time.monotonic(), _total(sim_settings, codes)
        time.sleep(10)
        t1, c1 = time.monotonic(), _total(sim_settings, codes)
        stats = stream.stats()
    rate = (c1 - c0) / (t1 - t0)
    assert rate == pytest.approx(50, rel=0.10)
    assert stats["current_rate"] == pytest.approx(50, rel=0.25)
    assert stats["errors"] == 0
    assert set(stats["rows_by_country"]) == set(codes)  # spread over every country


def test_set_rate_pause_resume_and_empty(sim_settings):
    codes = ["FRA", "ALB"]
    api.setup_databases(sim_settings, codes)
    stream = api.Stream(sim_settings, 20, countries=codes, writers=2, seed=2).start()
    try:
        time.sleep(1.5)
        stream.set_rate(80)
        time.sleep(1.0)
        stream.pause()
        time.sleep(0.3)  # let an in-flight transaction commit
        paused_at = _total(sim_settings, codes)
        assert paused_at > 40
        time.sleep(1.5)
        assert _total(sim_settings, codes) == paused_at
        assert stream.stats()["paused"] is True

        emptied = api.empty(sim_settings, "FRA")
        assert emptied == ["FRA"]
        counts = api.count_rows(sim_settings, codes)
        assert counts["FRA"] == 0 and counts["ALB"] > 0

        stream.resume()
        time.sleep(1.5)
        after = api.count_rows(sim_settings, codes)
        grown = sum(after.values()) - counts["ALB"]
        assert after["FRA"] > 0
        assert 40 < grown < 80 * 1.5 * 1.5  # the 80/s rate again, no catch-up flood
    finally:
        stream.stop()
    assert not stream.stats()["running"]


def test_commits_happen_out_of_id_and_created_at_order(sim_settings):
    api.setup_databases(sim_settings, ["FRA"])
    stream = api.Stream(
        sim_settings,
        30,
        countries=["FRA"],
        writers=2,
        seed=3,
        messiness=0,
        hold_fraction=0.3,
        hold_seconds=1.0,
    )
    first_seen: dict[int, int] = {}  # id -> poll number at which the row became visible
    created: dict[int, object] = {}
    xmin: dict[int, int] = {}
    stream.start()
    try:
        deadline = time.monotonic() + 4.0
        poll = 0
        while time.monotonic() < deadline:
            poll += 1
            for row_id, created_at, x in fetch(
                sim_settings, "FRA", "select id, created_at, xmin::text::bigint from responses"
            ):
                first_seen.setdefault(row_id, poll)
                created[row_id], xmin[row_id] = created_at, x
            time.sleep(0.05)
    finally:
        stream.stop()
    assert len(first_seen) > 50
    # a transaction that started (created_at, xmin) earlier became visible later
    by_start = sorted(first_seen, key=lambda i: (created[i], i))
    late_starters = [
        (a, b)
        for a in by_start
        for b in by_start
        if created[a] < created[b] and xmin[a] < xmin[b] and first_seen[a] > first_seen[b]
    ]
    assert late_starters, "no transaction committed after a later one"
    # and ids are not in commit order either
    assert any(a < b and first_seen[a] > first_seen[b] for a in first_seen for b in first_seen)


def _sim(capsys, *args: str) -> str:
    """Run `pulse sim …` in this process (the stream under test runs as a child process)."""
    capsys.readouterr()
    assert main(["sim", *args]) == 0
    return capsys.readouterr().out


def _status(capsys) -> dict:
    return json.loads(_sim(capsys, "status", "--countries", "FRA,MEX", "--json"))


def test_cli_stream_is_steered_through_the_control_database(sim_settings, capsys):
    proc = subprocess.Popen(
        [sys.executable, "-m", "pisa_pulse.cli", "sim", "stream", "--rate", "20"]
        + ["--countries", "FRA,MEX", "--writers", "2", "--no-bursts", "--hold-fraction", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=os.environ.copy(),
    )
    try:
        assert "streaming at 20.0/s" in proc.stdout.readline()
        assert "rate 40.0/s" in _sim(capsys, "rate", "40")
        status = _status(capsys)
        assert [s["target_rate"] for s in status["streams"]] == [40.0]
        assert status["streams"][0]["pid"] == proc.pid
        _sim(capsys, "pause")
        time.sleep(0.5)
        before = _status(capsys)["rows_total"]
        time.sleep(1.0)
        status = _status(capsys)
        assert status["streams"][0]["paused"] is True
        assert status["rows_total"] == before > 0
        _sim(capsys, "resume")
        time.sleep(1.5)
        assert _status(capsys)["rows_total"] > before
        _sim(capsys, "empty", "--country", "MEX")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert "stopped after" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert _status(capsys)["streams"] == []
