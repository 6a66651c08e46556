"""`pulse load --once --progress`: rows copied, rate and ETA on stderr; nothing without it."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from pisa_pulse.sim import api as sim
from tests.support.loader_world import assert_same_rows, simulated_sources

COUNTRIES = ["FRA", "ITA"]


@pytest.fixture
def world(pulse_env):
    with simulated_sources(pulse_env, COUNTRIES) as settings:
        yield settings


def _load(*flags):
    env = dict(os.environ, PULSE_SOURCES="fra,ita")
    done = subprocess.run(
        [sys.executable, "-m", "pisa_pulse.cli.load", "--once", *flags],
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    return done.stdout.decode(), done.stderr.decode()


def test_load_once_progress_bar_on_stderr_only_when_asked(world):
    sim.backfill(world, 2400, countries=COUNTRIES, seed=3)  # more than a page per source
    out, err = _load("--progress")
    assert "loaded 2400 rows" in out and "pulse load" not in out
    bars = [line for line in err.replace("\r", "\n").splitlines() if line.startswith("pulse load:")]
    assert bars, err
    # The last state: every row, the elapsed<remaining slot and a rate.
    assert re.search(r"100%.*2\.40k/2\.40k \[[0-9:]+<[0-9:]+, .*rows/s\]", bars[-1]), bars[-1]
    assert_same_rows(world, COUNTRIES)

    sim.backfill(world, 300, countries=COUNTRIES, seed=4)
    out, err = _load()  # stderr is a pipe, not a TTY: no bar
    assert "loaded 300 rows" in out
    assert "pulse load:" not in err and "\r" not in err
