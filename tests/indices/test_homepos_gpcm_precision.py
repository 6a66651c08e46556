"""Issue 14's precision target on simulated GPCM answers of realistic size: HOMEPOS within 0.01
for ≥ 99% of students once calibrated. NOT MET at 5,000 rows; this test pins the level measured.

Recipe (as tests/indices/test_homepos_model.py's recovery tests): 5,000 Italy-like students,
θ resampled from Italy's official HOMEPOS by weight, answers to the 25 HOMEPOS items (16
binary, 8 four-category, 1 six-category; docs/indices.md) drawn from the GPCM with Italy's
true block, Italy's real missingness copied. The block is then calibrated by MML exactly as
the job does at that size (`fit_mml`, population "auto" = normal below 10,000 rows, the 19
international items fixed), and each student's WLE with the fitted block is compared with
the WLE with the true block (the sampling error of θ itself is the same on both sides, so
this isolates the error of the calibration).

Measured 2026-12-02 (docs/indices-results.md, "HOMEPOS calibrated by MML"): within 0.01 for
52.3% / 61.8% / 53.7% of students (seeds 1/2/3), within 0.05 for 99.5–99.9%, mean bias ≤
0.006. Target 99% within 0.01: shortfall ~40 points. The cause is the estimation error of the
six block parameters from 5,000 answers (a 0.01 WLE shift is a very small parameter error;
larger samples: 75–79% at 10,000, 95% at 20,000 and 50,000, free-form population).
"""

from __future__ import annotations

import numpy as np
import pytest

from pisa_pulse.indices import homepos_fit
from pisa_pulse.indices import homepos_model as hm
from pisa_pulse.loader.raw_fixture import pool_rows

N_STUDENTS = 5_000
TARGET_WITHIN_001 = 0.99  # issue 14 — not met at this size, see the module docstring
MEASURED_WITHIN_001 = 0.50  # lowest of the three seeds measured (52.3%), rounded down


def _simulated(n: int, seed: int) -> tuple[np.ndarray, hm.ItemParams]:
    rows = [r for r in pool_rows() if r["CNT"] == "ITA"]
    official = np.array([float(r["HOMEPOS"]) if r["HOMEPOS"] else np.nan for r in rows])
    weights = np.array([float(r["W_FSTUWT"]) for r in rows])
    real_scores = hm.score_rows(rows)
    rng = np.random.default_rng(seed)
    has = np.flatnonzero(~np.isnan(official))
    idx = rng.choice(has, n, p=weights[has] / weights[has].sum())
    truth = hm.load_params("ITA")
    return hm.simulate_scores(official[idx], truth, real_scores[idx] < 0, rng), truth


def _precision(n: int, seed: int) -> dict:
    scores, truth = _simulated(n, seed)
    assert scores.shape == (n, len(hm.ITEMS)) == (n, 25)
    fit = homepos_fit.fit_mml(scores, None, hm.load_params("DEFAULT"))
    assert fit.success and fit.population == "normal"
    true_wle, ours = hm.wle(scores, truth), hm.wle(scores, fit.params)
    assert np.array_equal(np.isnan(true_wle), np.isnan(ours))
    gap = np.abs(ours - true_wle)[~np.isnan(true_wle)]
    return {
        "scored": int(gap.size),
        "within_001": float(np.mean(gap <= 0.01)),
        "within_005": float(np.mean(gap <= 0.05)),
        "bias": float(np.mean((ours - true_wle)[~np.isnan(true_wle)])),
    }


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_mml_precision_on_5000_simulated_students(seed):
    figures = _precision(N_STUDENTS, seed)
    print(
        f"MML on {N_STUDENTS:,} simulated GPCM students (seed {seed}): {figures};"
        f" target within 0.01 ≥ {TARGET_WITHIN_001:.0%}"
    )
    assert figures["scored"] >= 4_900  # realistic size: ≥ 5,000 rows, nearly all scorable
    # The measured level, not the target (shortfall documented above).
    assert figures["within_001"] >= MEASURED_WITHIN_001
    assert figures["within_005"] >= 0.99
    assert abs(figures["bias"]) <= 0.01
