"""Issue 14's precision target on simulated GPCM answers of realistic size: HOMEPOS within 0.01
for ≥ 99% of students once calibrated. NOT MET at 5,000 rows, and not reachable there by any
consistent estimator; this test pins the level measured.

Recipe (as tests/indices/test_homepos_model.py's recovery tests): 5,000 Italy-like students,
θ resampled from Italy's official HOMEPOS by weight, answers to the 25 HOMEPOS items (16
binary, 8 four-category, 1 six-category; docs/indices.md) drawn from the GPCM with Italy's
true block, Italy's real missingness copied. The block is then calibrated by MML exactly as
the job does at that size (`fit_mml`, population "auto" = free-form from 4,500 scorable rows,
the 19 international items fixed), and each student's WLE with the fitted block is compared
with the WLE with the true block (the sampling error of θ itself is the same on both sides,
so this isolates the error of the calibration).

Measured 2026-12-08 (docs/indices-results.md, "HOMEPOS calibrated by MML"): within 0.01 for
58.2% / 76.0% / 65.4% of students (seeds 1/2/3; the normal population used before gave 52.3% /
61.8% / 53.7%), within 0.05 for 99.8–100%. Target 99% within 0.01: shortfall ~25–40 points.

Why: the systematic error is the normal population shape (used at 5,000 rows until
2026-12-08): Italy's θ's are not normal and the normal fit converges 5 standard errors away
from the true block (75% within 0.01 at 50,000 rows). The "plateau" once seen for the
free-form fit (95% at 20,000 and at 50,000) was single-seed luck: it converges to the truth
(its error at 50,000 rows is what the Fisher information predicts, and equals the error of the
MLE that knows the true population; 94.5% / 99.9% within 0.01 at 50,000 for seeds 1 / 2).

The limit at 5,000 rows: the Fisher information of the six block parameters, propagated to
the WLE, lets an efficient estimator that even knows the θ distribution reach 67% within 0.01
on average (5–95% of samples: 47–89%); ≥ 99% in 1% of samples. 99% on average takes
~50,000–100,000 rows.
"""

from __future__ import annotations

import numpy as np
import pytest

from pisa_pulse.indices import homepos_fit
from pisa_pulse.indices import homepos_model as hm
from pisa_pulse.loader.raw_fixture import pool_rows

N_STUDENTS = 5_000
TARGET_WITHIN_001 = 0.99  # issue 14 — not met at this size, see the module docstring
MEASURED_WITHIN_001 = 0.55  # lowest of the three seeds measured (58.2%), rounded down

# Per-row standard errors of the block parameters (log a, b1… per item, in homepos_fit's
# packing order) from the Fisher information at the true block with the θ distribution known
# (the mean outer product of per-row scores over 100,000 simulated students, 2026-12-08); the
# standard error at n rows is this / √n. Known population = an optimistic (small) error.
FISHER_SE_PER_ROW = np.array(
    [
        2.95,
        1.306,
        2.907,
        1.328,
        3.826,
        2.387,
        3.603,
        2.076,
        4.235,
        4.948,
        2.915,
        15.061,
        2.44,
        3.432,
    ]
)


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
    assert fit.success and fit.population == "free"
    true_wle, ours = hm.wle(scores, truth), hm.wle(scores, fit.params)
    assert np.array_equal(np.isnan(true_wle), np.isnan(ours))
    gap = np.abs(ours - true_wle)[~np.isnan(true_wle)]
    error = homepos_fit._pack(fit.params) - homepos_fit._pack(truth)
    return {
        "scored": int(gap.size),
        "within_001": float(np.mean(gap <= 0.01)),
        "within_005": float(np.mean(gap <= 0.05)),
        "bias": float(np.mean((ours - true_wle)[~np.isnan(true_wle)])),
        "max_z": float(np.max(np.abs(error) / (FISHER_SE_PER_ROW / np.sqrt(n)))),
    }


# ~40 s per seed with the free-form population on the shared machine: seed 1 always, 2 and 3 slow.
@pytest.mark.parametrize(
    "seed", [1, pytest.param(2, marks=pytest.mark.slow), pytest.param(3, marks=pytest.mark.slow)]
)
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


@pytest.mark.slow
def test_mml_converges_to_the_true_block_at_50000_students():
    """At 50,000 rows the fitted block is within sampling error of the truth: every block
    parameter within 4 Fisher standard errors (a normal population fails this: 5.1 on the
    first item's log a, measured 2026-12-08), and the WLEs follow (≥ 90% within 0.01)."""
    figures = _precision(50_000, seed=1)
    print(f"MML on 50,000 simulated GPCM students (seed 1): {figures}")
    assert figures["max_z"] <= 4.0
    assert figures["within_001"] >= 0.9 and figures["within_005"] >= 0.999
    assert abs(figures["bias"]) <= 0.002


def _per_row_scores(scores: np.ndarray, params: hm.ItemParams) -> np.ndarray:
    """∂ log P(row) / ∂ block parameters at `params`, θ distribution known (Italy's official
    values, by weight, as the quadrature support): (n, 14)."""
    from scipy.special import logsumexp

    rows = [r for r in pool_rows() if r["CNT"] == "ITA"]
    official = np.array([float(r["HOMEPOS"]) if r["HOMEPOS"] else np.nan for r in rows])
    weights = np.array([float(r["W_FSTUWT"]) for r in rows])
    has = ~np.isnan(official)
    grid, inv = np.unique(official[has], return_inverse=True)
    log_prior = np.log(np.bincount(inv, weights=weights[has]) / weights[has].sum())
    logp = homepos_fit._log_probs(params, grid, np.arange(len(hm.ITEMS)))
    joint = homepos_fit._item_loglik(scores, logp, np.arange(len(hm.ITEMS))) + log_prior
    post = np.exp(joint - logsumexp(joint, axis=1)[:, None])
    k, c_all, cols = np.arange(hm.MAX_CAT), params.thresholds(), []
    for i in homepos_fit.BLOCK_INDEX:
        ncat, a = hm.N_CAT[i], params.a[i]
        p = np.exp(logp[i][:, :ncat])
        kern = k[None, :ncat] * grid[:, None] - c_all[i][None, :ncat]
        derivs = [a * (kern - (p * kern).sum(axis=1, keepdims=True))]  # d/d log a
        for m in range(1, ncat):  # d/d b_m
            derivs.append(a * (p[:, m:].sum(axis=1, keepdims=True) - (k[None, :ncat] >= m)))
        for d in derivs:
            cols.append(np.einsum("nq,qn->n", post, d[:, np.maximum(scores[:, i], 0)]))
    return np.array(cols).T


@pytest.mark.slow
def test_99_percent_within_001_is_out_of_reach_at_5000_students():
    """The statistical limit: block-parameter errors drawn from the Fisher law at 5,000 rows
    (θ distribution known: optimistic) leave ~67% of WLEs within 0.01 on average (measured
    2026-12-08 with 100,000 rows and 100 draws: 67.0%, 5–95% 47–89%)."""
    truth = hm.load_params("ITA")
    big, _ = _simulated(50_000, seed=11)
    per_row = _per_row_scores(big, truth)
    cov = np.linalg.inv(per_row.T @ per_row / len(per_row))
    se = np.sqrt(np.diag(cov))
    print(f"Fisher SE per row: {np.round(se, 3)}")
    # 50,000 rows here, 100,000 for the constants: the rare first step of ST012Q03TA is noisy
    assert np.allclose(se, FISHER_SE_PER_ROW, rtol=0.25)
    scores, _ = _simulated(N_STUDENTS, seed=1)
    true_wle = hm.wle(scores, truth)
    ok = ~np.isnan(true_wle)
    rng = np.random.default_rng(0)
    shares = []
    for _ in range(100):
        draw = rng.multivariate_normal(homepos_fit._pack(truth), cov / N_STUDENTS)
        gap = np.abs(hm.wle(scores, homepos_fit._unpack(draw, truth)) - true_wle)[ok]
        shares.append(np.mean(gap <= 0.01))
    print(
        f"efficient estimator at {N_STUDENTS:,} rows: mean share within 0.01 {np.mean(shares):.3f}"
    )
    assert np.mean(shares) <= 0.8 < TARGET_WITHIN_001
    assert np.mean(np.array(shares) >= TARGET_WITHIN_001) <= 0.1
