"""The freshness benchmark's arithmetic on a hand-made case: each commit's lag is the time to
the first poll showing its country's count; a commit never shown is infinite (lost)."""

from __future__ import annotations

import math

from pisa_pulse.bench.system import Windows, lag_summary, lags


def test_each_commit_gets_the_first_poll_that_shows_it():
    commits = [(10.0, "FRA", 101), (10.5, "FRA", 102), (11.0, "ITA", 51), (12.0, "ITA", 52)]
    polls = [
        (10.2, {"FRA": 100, "ITA": 50}),  # nothing yet
        (10.7, {"FRA": 102, "ITA": 50}),  # both FRA commits at once
        (11.9, {"FRA": 102, "ITA": 51}),
        (13.0, {"FRA": 102, "ITA": 51}),  # ITA's second commit never shown
    ]
    got = {(s["country"], s["t"]): s["lag"] for s in lags(commits, polls)}
    assert math.isclose(got[("FRA", 10.0)], 0.7)
    assert math.isclose(got[("FRA", 10.5)], 0.2)
    assert math.isclose(got[("ITA", 11.0)], 0.9)
    assert got[("ITA", 12.0)] == float("inf")
    summary = lag_summary(lags(commits, polls))
    assert summary["n"] == 4 and summary["lost"] == 1
    assert summary["p99"] == float("inf") and summary["max"] == float("inf")


def test_a_commit_shown_only_after_the_timeout_counts_as_lost():
    got = lags([(0.0, "FRA", 1), (1.0, "FRA", 2)], [(15.5, {"FRA": 2})], timeout=15)
    assert [s["lag"] for s in got] == [float("inf"), 14.5]


def test_windows_mark_the_slow_jobs_that_ran():
    samples = [{"t": 100.0 + k, "lag": 0.1 if k < 10 else 1.0} for k in range(20)]
    windows = Windows.of(samples, [("test", 112.0, 130.0)], seconds=10)
    assert [w["jobs"] for w in windows.rows] == [[], ["test"]]
    assert [w["p95"] for w in windows.rows] == [0.1, 1.0]
    assert windows.worst(with_jobs=False)["p95"] == 0.1
    assert windows.worst()["jobs"] == ["test"]
