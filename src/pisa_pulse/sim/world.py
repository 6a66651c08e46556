"""Each country like itself: per-country draw weights over the pool from published means.

`data/reference/country_means_2018.csv` holds the PISA 2018 country means of ESCS (79
countries) and BELONG (68), weighted by W_FSTUWT over the full student file (provenance
in data/README.md). For a country with a figure, pool rows are drawn with the tilted
probabilities of `pisa_pulse.sim.tilt` so that its stream's W_FSTUWT-weighted means of the
official ESCS and BELONG the pool rows carry equal the published ones; a country
without any figure draws uniformly, as before. Solved once per country per process
(79 solves take about 0.1 s).
"""

from __future__ import annotations

import bisect
import csv
import random
from functools import cache
from itertools import accumulate

import numpy as np

from pisa_pulse.core import config
from pisa_pulse.sim import pool, tilt

MEANS_PATH = config.REPO_ROOT / "data" / "reference" / "country_means_2018.csv"
FEATURES = ("escs", "belong")  # targets, in the CSV's column order (escs_mean, belong_mean)


@cache
def published_means() -> dict[str, tuple[float, float]]:
    """CNT -> (ESCS mean, BELONG mean); NaN where the file has no figure."""
    out = {}
    with open(MEANS_PATH, newline="") as f:
        for row in csv.DictReader(f):
            out[row["cnt"]] = tuple(
                float(row[f"{name}_mean"]) if row[f"{name}_mean"] else float("nan")
                for name in FEATURES
            )
    return out


def _number(value: str) -> float:
    return float("nan") if value == "NA" else float(value)


@cache
def pool_features(country: str) -> tuple[np.ndarray, np.ndarray]:
    """(features rows x (ESCS, BELONG) with NaN for NA, W_FSTUWT) of the rows a country draws."""
    col = pool._column_index()
    rows = pool.clean_rows()
    source = rows[country] if country in rows else [r for c in pool.POOL_COUNTRIES for r in rows[c]]
    x = np.array([[_number(r[col[name]]) for name in FEATURES] for r in source])
    w = np.array([_number(r[col["w_fstuwt"]]) for r in source])
    return x, w


@cache
def country_tilt(country: str) -> tilt.Tilt | None:
    """The country's tilt, or None when it has no published figure (uniform draws)."""
    targets = published_means().get(country)
    if targets is None or all(np.isnan(targets)):
        return None
    x, w = pool_features(country)
    return tilt.solve(x, w, np.array(targets))


@cache
def cum_weights(country: str) -> list[float] | None:
    """Cumulative draw weights for random.choices (None: uniform)."""
    t = country_tilt(country)
    return None if t is None else list(accumulate(t.probabilities.tolist()))


def summary(country: str) -> dict:
    """Published and achieved means, Kish ESS (tilted and untilted), rows carrying 90 % of q."""
    x, w = pool_features(country)
    t = country_tilt(country)
    p = np.full(len(w), 1 / len(w)) if t is None else t.probabilities
    q = np.sort(w * p / (w * p).sum())[::-1]
    base_ess = float(w.sum() ** 2 / (w**2).sum())
    ess = float(1 / (q**2).sum())
    published = published_means().get(country, (float("nan"), float("nan")))
    achieved = tilt.weighted_means(x, w * p)
    return {
        "country": country,
        "pool_rows": len(w),
        "escs_published": published[0],
        "escs_achieved": float(achieved[0]),
        "belong_published": published[1],
        "belong_achieved": float(achieved[1]),
        "ess": ess,
        "ess_untilted": base_ess,
        "ess_kept": ess / base_ess,
        "rows_for_90pct": int(np.searchsorted(np.cumsum(q), 0.9) + 1),
        "converged": True if t is None else t.converged,
    }


def systematic_draws(country: str, n: int, n_pool: int, rng: random.Random) -> list[int]:
    """n pool-row indices by systematic sampling of the country's draw weights, shuffled.

    A backfill uses these instead of n independent draws: each row then appears within
    one of its expected count, which removes most of the sampling noise of the country's
    means (measured 2026-12-02 with independent draws over ~103,000 rows: BELONG within
    0.05 of the published mean for 85 % of countries, ESCS within 0.10 for 92 %).
    """
    cum = cum_weights(country) or [float(i + 1) for i in range(n_pool)]
    step, start = cum[-1] / n, rng.random() * cum[-1] / n
    out = [min(bisect.bisect(cum, start + k * step), n_pool - 1) for k in range(n)]
    rng.shuffle(out)
    return out
