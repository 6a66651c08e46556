"""Helpers shared by benchmarks: percentiles and result files."""

from __future__ import annotations

import json
import math
import platform
import statistics
import time
from pathlib import Path

from pisa_pulse.core.config import REPO_ROOT

RESULTS_DIR = REPO_ROOT / "docs" / "bench"


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty list: the ceil(p·n/100)-th
    smallest. Infinite values (timed-out samples) sort last and count like any other."""
    ordered = sorted(values)
    rank = math.ceil(round(p * len(ordered) / 100, 9))  # round: 95 * 20 / 100 is not 19.0
    return ordered[max(0, min(len(ordered), rank) - 1)]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": statistics.median(values),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "max": max(values),
    }


def save(name: str, result: dict) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": name,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores",
        **result,
    }
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(result, indent=2))
    return path
