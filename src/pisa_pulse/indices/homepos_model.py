"""The HOMEPOS measurement model in Python: item scoring, GPCM probabilities and Warm's WLE.

The warehouse scores rows with the PL/pgSQL twin of this code (macros/homepos.sql); this
module is what the calibration job (`pulse calibrate homepos`) and the tests use. The model
and the Newton-WLE recipe are described in docs/indices.md ("HOMEPOS").
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from pisa_pulse.core import config

ITEM_PARAMS_CSV = config.REPO_ROOT / "seeds" / "homepos_item_params.csv"

DBT_PROJECT_YML = config.REPO_ROOT / "dbt_project.yml"


def read_items(path: Path = DBT_PROJECT_YML) -> list[dict]:
    """The 25 items ({item, kind, n_cat}) in pattern order: the dbt project var `homepos_items`,
    the one list (the SQL macro homepos_items() reads it too)."""
    return yaml.safe_load(Path(path).read_text())["vars"]["homepos_items"]


_ITEMS = read_items()
# Pattern position = index in this list.
ITEMS: tuple[str, ...] = tuple(i["item"] for i in _ITEMS)
# The six items with country-specific parameters in every country.
NATIONAL_BLOCK: tuple[str, ...] = (
    "ST011Q07TA",
    "ST011Q08TA",
    "ST011D17TA",
    "ST011D18TA",
    "ST011D19TA",
    "ST012Q03TA",
)
N_CAT = np.array([i["n_cat"] for i in _ITEMS])
MAX_CAT = 6
MISSING = -1


def score_item(item: str, value: str | None) -> int:
    """Score one raw answer (text as stored, e.g. '1', '1.0', '0250001', 'NA') or MISSING."""
    if value is None:
        return MISSING
    v = value.strip()
    if not v or v.upper() == "NA":
        return MISSING
    if item.startswith("ST011D"):
        # '0' + ISO numeric country + response: last digit 1 = yes, 2 = no; 999999x missing.
        if len(v) != 7 or v.startswith("99999") or not v.isdigit():
            return MISSING
        return {"1": 1, "2": 0}.get(v[-1], MISSING)
    try:
        raw = float(v)
    except ValueError:
        return MISSING
    if raw != int(raw):
        return MISSING
    raw = int(raw)
    if item.startswith("ST011"):
        return {1: 1, 2: 0}.get(raw, MISSING)
    if item.startswith("ST012"):
        return raw - 1 if 1 <= raw <= 4 else MISSING
    return raw - 1 if 1 <= raw <= 6 else MISSING  # ST013 books


def score_rows(rows: list[dict[str, str]]) -> np.ndarray:
    """(n, 25) int array of item scores (MISSING = -1) from rows keyed by PISA variable."""
    return np.array([[score_item(item, row.get(item)) for item in ITEMS] for row in rows])


@dataclass
class ItemParams:
    """Parameters of the 25 items: discrimination a[i] and step parameters b[i, k-1]."""

    a: np.ndarray  # (25,)
    b: np.ndarray  # (25, 5), unused steps 0

    def thresholds(self) -> np.ndarray:
        """c[i, k] = b_i1 + … + b_ik, with c[i, 0] = 0; shape (25, 6)."""
        c = np.zeros((len(ITEMS), MAX_CAT))
        c[:, 1:] = np.cumsum(self.b, axis=1)
        return c

    def copy(self) -> ItemParams:
        return ItemParams(self.a.copy(), self.b.copy())


def read_item_param_rows(path: Path = ITEM_PARAMS_CSV) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def load_params(scope: str, path: Path = ITEM_PARAMS_CSV) -> ItemParams:
    """International items plus the six-item block of `scope` (a country code or DEFAULT)."""
    rows = read_item_param_rows(path)
    a = np.full(len(ITEMS), np.nan)
    b = np.zeros((len(ITEMS), MAX_CAT - 1))
    for row in rows:
        item = row["item"]
        wanted = "international" if item not in NATIONAL_BLOCK else scope
        if row["scope"] != wanted:
            continue
        i = ITEMS.index(item)
        a[i] = float(row["a"])
        for k in range(int(row["n_cat"]) - 1):
            b[i, k] = float(row[f"b{k + 1}"])
    if np.isnan(a).any():
        missing = [ITEMS[i] for i in np.flatnonzero(np.isnan(a))]
        raise KeyError(f"no HOMEPOS parameters for scope {scope!r}: {missing}")
    return ItemParams(a, b)


def block_countries(path: Path = ITEM_PARAMS_CSV) -> list[str]:
    """Countries whose own six-item block is in the seed."""
    scopes = {r["scope"] for r in read_item_param_rows(path)}
    return sorted(scopes - {"international", "DEFAULT"})


def category_probs(theta: np.ndarray, params: ItemParams) -> np.ndarray:
    """P(X_i = k | θ) for every θ (shape (m,)), item and category: (m, 25, 6); 0 beyond n_cat."""
    c = params.thresholds()
    k = np.arange(MAX_CAT)
    expo = params.a[None, :, None] * (k[None, None, :] * theta[:, None, None] - c[None, :, :])
    expo = np.where(k[None, None, :] < N_CAT[None, :, None], expo, -np.inf)
    expo -= expo.max(axis=2, keepdims=True)
    p = np.exp(expo)
    return p / p.sum(axis=2, keepdims=True)


def warm_terms(theta: np.ndarray, scores: np.ndarray, params: ItemParams):
    """Warm-corrected score f, its derivative f′ and the information I at θ, per row."""
    valid = scores >= 0
    x = np.where(valid, scores, 0)
    k = np.arange(MAX_CAT)
    a = params.a
    p = category_probs(theta, params)
    e = (p * k).sum(axis=2)
    d = k[None, None, :] - e[:, :, None]
    v = (p * d**2).sum(axis=2)
    m3 = (p * d**3).sum(axis=2)
    m4 = (p * d**4).sum(axis=2)
    w = valid.astype(float)
    s = (w * a * (x - e)).sum(axis=1)
    info = (w * a**2 * v).sum(axis=1)
    j = (w * a**3 * m3).sum(axis=1)
    kk = (w * a**4 * (m4 - 3 * v**2)).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = s + j / (2 * info)
        fp = -info + (kk * info - j**2) / (2 * info**2)
    return f, fp, info


def wle(scores: np.ndarray, params: ItemParams, tol: float = 1e-8, max_iter: int = 100):
    """Warm's WLE per row of `scores` (n, 25) by Newton, as docs/indices.md describes.

    Rows with fewer than 3 valid items get NaN.
    """
    scores = np.atleast_2d(scores)
    enough = (scores >= 0).sum(axis=1) >= 3
    theta = np.zeros(len(scores))
    active = enough.copy()
    for _ in range(max_iter):
        if not active.any():
            break
        f, fp, _ = warm_terms(theta[active], scores[active], params)
        with np.errstate(divide="ignore", invalid="ignore"):
            step = np.where(fp < 0, -f / fp, np.sign(f))
        step = np.clip(step, -1.0, 1.0)
        theta[active] += step
        still = np.abs(step) >= tol
        active[np.flatnonzero(active)[~still]] = False
    theta[~enough] = np.nan
    return theta


def simulate_scores(
    theta: np.ndarray, params: ItemParams, missing: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Item scores drawn from the model for each θ; `missing` (n, 25) marks items left out."""
    p = category_probs(theta, params)  # (n, 25, 6)
    u = rng.random(p.shape[:2])[..., None]
    draws = (p.cumsum(axis=2) < u).sum(axis=2)
    draws = np.minimum(draws, N_CAT[None, :] - 1)
    return np.where(missing, MISSING, draws)
