"""The stand-in world: each country's tilted draws, a day of history, the backfill's speed."""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from pisa_pulse.loader import Loader
from pisa_pulse.sim import api, history, tilt, world
from tests.support.loader_world import assert_same_rows
from tests.support.sim_world import fetch


@pytest.fixture
def sim_settings(pulse_env):
    yield pulse_env
    api.drop_databases(pulse_env)


def test_tilt_reaches_every_published_mean_within_0_02_on_the_pools_official_values():
    means = world.published_means()
    assert len(means) == 79
    checked = 0
    for cnt, targets in means.items():
        x, w = world.pool_features(cnt)
        t = tilt.solve(x, w, np.array(targets))
        assert t.converged, cnt
        # recomputed here from the probabilities, not taken from the solver's report
        got = tilt.weighted_means(x, w * t.probabilities)
        for j, target in enumerate(targets):
            if not np.isnan(target):
                assert abs(got[j] - target) < 0.02, (cnt, j, got[j], target)
                checked += 1
        assert t.ess(w) > 100, cnt  # still hundreds of distinct students behind each mean
    assert checked == 79 + 68


def test_tilted_draws_reproduce_the_target_in_the_rows_submitted():
    """The rows `rows.submission` actually draws, not the solver's expectation."""
    from pisa_pulse.sim import pool, rows
    from pisa_pulse.sim.messiness import Messifier

    col = pool._column_index()
    rng = random.Random(3)
    clean = Messifier(0.0, rng)
    for cnt in ("MAR", "ISL"):  # the two ends of the published ESCS range
        sw = swx = 0.0
        for _ in range(20000):
            row = rows.submission(cnt, rng, clean)
            w, b = row[col["w_fstuwt"]], row[col["belong"]]
            if b != "NA":
                sw += float(w)
                swx += float(w) * float(b)
        # sampling error of a 20,000-row weighted mean of BELONG (sd ~1): about 0.02
        assert swx / sw == pytest.approx(world.published_means()[cnt][1], abs=0.06)


def test_countries_without_a_figure_keep_the_pools_mix():
    assert "QCY" not in world.published_means()
    assert world.cum_weights("QCY") is None
    s = world.summary("QCY")
    assert s["ess_kept"] == pytest.approx(1.0)


def test_history_hourly_counts_follow_the_configured_rhythm(sim_settings):
    codes = ["JPN", "MEX"]  # 15 hours apart: their busy hours do not overlap
    end = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    h = history.History(48, end=end)
    api.setup_databases(sim_settings, codes)
    n = api.backfill(sim_settings, 30000, countries=codes, even=True, history=h, seed=5)
    assert n == 30000
    for cnt in codes:
        got = Counter(
            hour
            for (hour,) in fetch(
                sim_settings,
                cnt,
                "select extract(hour from created_at at time zone 'UTC')::int from responses "
                "where created_at >= %s and created_at < %s",
                (h.start, h.end),
            )
        )
        total = sum(got.values())
        assert total == 15000  # every row inside the window
        expected = Counter()
        for (a, _), share in zip(h.bins, h.expected_share(cnt), strict=True):
            expected[a.hour] += share * total
        for hour in range(24):
            e = expected[hour]
            assert abs(got[hour] - e) <= 5 * e**0.5 + 5, (cnt, hour, got[hour], e)
        local_busy = sum(got[(hh - history.UTC_OFFSETS[cnt]) % 24] for hh in range(8, 16))
        assert local_busy / total > 0.6  # school hours dominate, by local time


def test_backfill_keeps_4000_rows_per_second(sim_settings):
    codes = ["FRA", "ALB", "ISL", "MAR"]
    api.setup_databases(sim_settings, codes)
    api.backfill(sim_settings, 2000, countries=codes, hours=24)  # warm up pool and tilts
    rates = []
    for attempt in range(3):  # the machine is shared: the best of three
        t0 = time.monotonic()
        api.backfill(sim_settings, 20000, countries=codes, hours=24, seed=attempt)
        rates.append(20000 / (time.monotonic() - t0))
        if rates[-1] >= 4000:
            break
    # 4,000 rows/s on a quiet machine (6,214 measured on 2026-12-02 at load 0.5); on a
    # loaded one the bar drops with the share of the 2 cores this test can get
    # (2,283 rows/s measured at load 6 with a `pulse up` stack running).
    share = min(1.0, (os.cpu_count() or 2) / max(os.getloadavg()[0], 1e-9))
    assert max(rates) >= 4000 * share, (rates, os.getloadavg())


def test_backdated_rows_added_after_the_loaders_first_read_are_all_loaded(sim_settings):
    """The loader's incremental read filters on created_at; reconciliation catches the rest."""
    codes = ["FRA", "ALB"]
    sim_settings.sources = list(codes)
    api.setup_databases(sim_settings, codes)
    api.backfill(sim_settings, 300, countries=codes, seed=1)
    with Loader(sim_settings, page_rows=500, reconcile_interval=0.5) as loader:
        for _ in range(3):
            loader.tick()
        assert_same_rows(sim_settings, codes)
        end = datetime.now(UTC) - timedelta(hours=1)  # every row at least an hour old
        api.backfill(sim_settings, 2000, countries=codes, history=history.History(24, end), seed=2)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            loader.tick()
            try:
                assert_same_rows(sim_settings, codes)
                break
            except AssertionError:
                time.sleep(0.2)
    assert assert_same_rows(sim_settings, codes) == 2300
