"""`pulse bench endpoints` end to end against a served file (tiny load; the figures in the
README come from the real run on `pulse up`), and the benchmarks' nearest-rank percentile."""

from __future__ import annotations

import argparse
import json
import shutil

import pytest

from pisa_pulse.bench import common, endpoints
from tests.support.datasette import start_serving


@pytest.mark.skipif(not shutil.which("wrk"), reason="needs wrk (.ci/run installs it)")
def test_bench_endpoints_small_run(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path)
    db = tmp_path / "pulse.db"
    endpoints.write_sample(db, countries=10)
    server, url = start_serving(db, tmp_path / "serve.log", ready="/forage/submissions")
    try:
        parser = argparse.ArgumentParser()
        endpoints.add_arguments(parser)
        args = parser.parse_args(["--url", url, "--pollers", "4", "--rate", "40", "--seconds", "2"])
        endpoints.run(args)  # exit status depends on the machine's load: not asserted here
    finally:
        server.terminate()
        server.wait(10)
    result = json.loads((tmp_path / "endpoints.json").read_text())["phases"]["given_url"]
    assert result["errors"] == 0
    # 4 connections polling every 100 ms for 2 s: about 80 requests, every one answered.
    assert 40 <= result["requests"] <= 100
    assert 0 < result["latency_ms"]["p50"] <= result["latency_ms"]["p99"]


@pytest.mark.parametrize(
    ("n", "p", "rank"),
    [(20, 95, 19), (100, 99, 99), (3, 50, 2), (1, 99, 1), (10, 50, 5), (40, 95, 38), (7, 95, 7)],
)
def test_percentile_is_nearest_rank(n, p, rank):
    # the ceil(p*n/100)-th smallest; the old formula answered rank 20 for p95 of 20
    assert common.percentile(list(range(1, n + 1))[::-1], p) == rank


def test_percentile_counts_timed_out_samples_as_infinite():
    values = [0.1] * 94 + [float("inf")] * 6
    assert common.percentile(values, 95) == float("inf")
    assert common.percentile(values, 94) == 0.1
