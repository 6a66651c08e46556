"""`pulse bench endpoints` works end to end (tiny load; the figures come from the real run)."""

from __future__ import annotations

import argparse
import json

from pulse.bench import common, endpoints


def test_bench_endpoints_small_run(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path)
    parser = argparse.ArgumentParser()
    endpoints.add_arguments(parser)
    args = parser.parse_args(
        ["--pollers", "4", "--rate", "40", "--seconds", "2", "--warmup", "0.5"]
    )
    endpoints.run(args)  # exit status depends on the machine's load: not asserted here
    result = json.loads((tmp_path / "endpoints.json").read_text())
    assert result["errors"] == 0
    # 4 pollers x 5 URLs at 40 requests/s over 2 s: about 80 requests (fewer if the machine
    # is so busy the generator falls behind), every one answered.
    assert 40 <= result["requests"] <= 100
    assert 0 < result["latency_ms"]["p50"] <= result["latency_ms"]["p99"]
