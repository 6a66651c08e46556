"""The real `pulse up` (what `make run` starts) heals: each child SIGKILLed in turn.

No stand-ins: its own durable PostgreSQL, the 82 demo sources, the simulator at 20/s, the
pipeline with its jobs and Datasette, started the way the benchmarks start it
(src/pisa_pulse/bench/system.py). After each kill the supervisor restarts the child; while the
pipeline or the simulator is down Forage keeps answering 200 (stale), and within 10 s of
each kill the served count has caught up with what the sources held a second earlier.
"""

from __future__ import annotations

import json
import signal
import time

import httpx
import pytest

from pisa_pulse.bench.system import System

# Starts the whole system (pulse up with its own PostgreSQL): not in `make test-fast`.
pytestmark = pytest.mark.integration

FRESH_WITHIN_S = 10.0
CHILDREN = ("simulator", "pipeline", "datasette")


def _served(url: str) -> tuple[int, int | None]:
    try:
        r = httpx.get(f"{url}/forage/submissions", timeout=2)
        return r.status_code, r.json().get("count") if r.status_code == 200 else None
    except httpx.HTTPError:
        return 0, None


def _fresh(system: System) -> bool:
    """The served count reaches the sources' total of a second ago (lag ≤ ~1 s)."""
    then = system.source_total()
    time.sleep(1.0)
    status, count = _served(system.url)
    return status == 200 and count is not None and count >= then


def _report(system: System) -> dict:
    return json.loads((system.home / "supervisor.json").read_text())


@pytest.fixture(scope="module")
def system():
    with System(rate=20) as running:
        yield running


@pytest.mark.parametrize("child", CHILDREN)
def test_killed_child_heals(system, child):
    before = _report(system)["services"]
    pid = before[child]["pid"]
    assert _fresh(system), "not fresh before the kill"
    killed_at = time.monotonic()
    system.processes()[child].send_signal(signal.SIGKILL)

    statuses, fresh_after = [], None
    while time.monotonic() - killed_at < FRESH_WITHIN_S + 5:
        statuses.append(_served(system.url)[0])
        if time.monotonic() - killed_at > 1.5 and _fresh(system):
            fresh_after = time.monotonic() - killed_at
            break
    after = _report(system)["services"]
    assert after[child]["pid"] != pid and after[child]["state"] == "running"
    assert after[child]["restarts"] == before[child]["restarts"] + 1
    for other in set(CHILDREN) - {child}:  # the others were left alone
        assert after[other]["pid"] == before[other]["pid"]
    assert fresh_after is not None and fresh_after <= FRESH_WITHIN_S, (
        f"{child}: not fresh within {FRESH_WITHIN_S} s of the kill; statuses {statuses}\n"
        + (system.home / "logs" / f"{child}.log").read_text()[-2000:]
    )
    if child != "datasette":  # Datasette itself is what answers: it is down until restarted
        assert set(statuses) == {200}, f"Forage stopped answering while {child} was down"
