"""Estimating a country's six-item HOMEPOS block (the 19 international items stay fixed).

Two estimators, both pure numpy/scipy on scored answers (pisa_pulse.indices.homepos_model):

- `fit_to_official`: rows that carry the OECD's HOMEPOS. At the official θ the Warm
  estimating equation f(θ) = 0 must hold, and f(θ)/I(θ) is, to first order, the gap between
  our WLE and the official value; least squares on that residual over the block parameters.
- `fit_mml`: marginal maximum likelihood from raw answers and student weights, with a normal
  population N(μ, σ²) for the country on a fixed quadrature grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize
from scipy.special import logsumexp

from pisa_pulse.indices.homepos_model import (
    ITEMS,
    MAX_CAT,
    N_CAT,
    NATIONAL_BLOCK,
    ItemParams,
    warm_terms,
)

# From this many scorable rows the population is estimated free-form. Measured on simulated
# Italy-like answers (docs/indices-results.md, "HOMEPOS calibrated by MML", 2026-12-08): the
# normal shape is biased (at 50,000 rows it converges 5 standard errors away from the true
# block: 75% of WLEs within 0.01) and free-form beats it at 5,000 rows (all scorable) on 3
# of 3 seeds (58/76/65% vs 52/62/54% within 0.01); at 3,500 rows normal is better on 2 of 3
# (68/56/42% vs 63/45/52%) and at 2,000 on 2 of 3: there the free shape's sampling noise
# costs more than the normal's bias.
FREE_POPULATION_MIN_ROWS = 4_500
BLOCK_INDEX = np.array([ITEMS.index(item) for item in NATIONAL_BLOCK])


def _pack(params: ItemParams) -> np.ndarray:
    """Free parameters of the block: log a and the steps b1…b_{n_cat−1} of each block item."""
    out = []
    for i in BLOCK_INDEX:
        out.append(np.log(params.a[i]))
        out.extend(params.b[i, : N_CAT[i] - 1])
    return np.array(out)


def _unpack(vector: np.ndarray, base: ItemParams) -> ItemParams:
    params = base.copy()
    pos = 0
    for i in BLOCK_INDEX:
        params.a[i] = np.exp(vector[pos])
        steps = N_CAT[i] - 1
        params.b[i, :steps] = vector[pos + 1 : pos + 1 + steps]
        pos += 1 + steps
    return params


@dataclass
class FitResult:
    params: ItemParams
    method: str
    n_rows: int
    success: bool
    objective: float
    message: str = ""
    mu: float | None = None
    sigma: float | None = None
    population: str | None = None


def fit_to_official(scores: np.ndarray, official: np.ndarray, start: ItemParams) -> FitResult:
    """Fit the block to rows carrying official HOMEPOS (rows with < 3 valid items ignored)."""
    keep = ~np.isnan(official) & ((scores >= 0).sum(axis=1) >= 3)
    scores, theta = scores[keep], official[keep]

    def residuals(vector: np.ndarray) -> np.ndarray:
        f, _, info = warm_terms(theta, scores, _unpack(vector, start))
        return f / info

    result = optimize.least_squares(residuals, _pack(start), method="trf", x_scale="jac")
    return FitResult(
        params=_unpack(result.x, start),
        method="official_fit",
        n_rows=int(keep.sum()),
        success=bool(result.success),
        objective=float(np.sqrt(np.mean(result.fun**2))),
        message=str(result.message),
    )


def _log_probs(params: ItemParams, grid: np.ndarray, items: np.ndarray) -> np.ndarray:
    """log P(X_i = k | θ_q) for the given items: (len(items), Q, MAX_CAT), −inf beyond n_cat."""
    c = params.thresholds()[items]
    a = params.a[items]
    k = np.arange(MAX_CAT)
    expo = a[:, None, None] * (k[None, None, :] * grid[None, :, None] - c[:, None, :])
    expo = np.where(k[None, None, :] < N_CAT[items][:, None, None], expo, -np.inf)
    return expo - logsumexp(expo, axis=2, keepdims=True)


def _item_loglik(scores: np.ndarray, logp: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Σ over `items` of log P(x_ij | θ_q) per row and grid point: (n, Q); missing adds 0."""
    n, q = len(scores), logp.shape[1]
    total = np.zeros((n, q))
    for pos, i in enumerate(items):
        x = scores[:, i]
        valid = x >= 0
        total[valid] += logp[pos][:, x[valid]].T
    return total


def fit_mml(
    scores: np.ndarray,
    weights: np.ndarray | None,
    start: ItemParams,
    grid: np.ndarray | None = None,
    max_iter: int = 1000,
    population: str = "auto",
) -> FitResult:
    """Marginal ML of the block and of the country's θ distribution, international items fixed.

    `population` is "free" (a discrete distribution on the grid, estimated jointly: no shape
    is imposed, which removes the bias a wrong normal shape causes; the fit then converges to
    the true block as the rows grow), "normal", or "auto": free from FREE_POPULATION_MIN_ROWS
    rows on (below, its extra freedom costs more in sampling noise than the normal shape
    costs in bias; see docs/homepos.md and docs/indices-results.md).

    The gradient is analytic: Σ_i w_i Σ_q posterior_iq ∂ log p(x_i, θ_q), which for each block
    item only needs the posterior mass R[q, x] of the rows answering x.
    """
    keep = (scores >= 0).sum(axis=1) >= 3
    scores = scores[keep]
    if population == "auto":
        population = "free" if len(scores) >= FREE_POPULATION_MIN_ROWS else "normal"
    w = np.ones(len(scores)) if weights is None else np.nan_to_num(weights[keep], nan=0.0)
    w = w * (len(w) / w.sum())  # normalised weights: the sample size keeps its meaning
    grid = np.linspace(-7.0, 6.0, 105) if grid is None else grid
    fixed = np.array([i for i in range(len(ITEMS)) if i not in set(BLOCK_INDEX)])
    fixed_ll = _item_loglik(scores, _log_probs(start, grid, fixed), fixed)
    k = np.arange(MAX_CAT)
    # one-hot of each block item's answer: (n, MAX_CAT) per item, all-zero when missing
    onehot = [(scores[:, i][:, None] == k[None, :]).astype(float) for i in BLOCK_INDEX]

    n_block = len(_pack(start))

    def objective(vector: np.ndarray) -> tuple[float, np.ndarray]:
        params = _unpack(vector[:n_block], start)
        if population == "free":
            log_prior = vector[n_block:] - logsumexp(vector[n_block:])
        else:
            mu, sigma = vector[-2], np.exp(vector[-1])
            z = (grid - mu) / sigma
            log_prior = -0.5 * z**2
            log_prior -= logsumexp(log_prior)
        prior = np.exp(log_prior)
        logp = _log_probs(params, grid, BLOCK_INDEX)
        joint = fixed_ll + _item_loglik(scores, logp, BLOCK_INDEX) + log_prior[None, :]
        marginal = logsumexp(joint, axis=1)
        post = np.exp(joint - marginal[:, None]) * w[:, None]  # (n, Q), weighted
        grad = []
        c_all = params.thresholds()
        for pos, i in enumerate(BLOCK_INDEX):
            ncat, a, c = N_CAT[i], params.a[i], c_all[i]
            p = np.exp(logp[pos][:, :ncat])  # (Q, ncat)
            r = post.T @ onehot[pos][:, :ncat]  # (Q, ncat): posterior mass answering x
            kern = k[None, :ncat] * grid[:, None] - c[None, :ncat]  # kθ − c_k
            d_a = kern - (p * kern).sum(axis=1, keepdims=True)
            grad.append(-(r * d_a).sum() * a)  # d/d log a
            for m in range(1, ncat):
                tail = p[:, m:].sum(axis=1, keepdims=True)  # P(K ≥ m | θ_q)
                d_b = a * (tail - (k[None, :ncat] >= m))
                grad.append(-(r * d_b).sum())
        mass = post.sum(axis=0)
        if population == "free":
            grad.extend(-(mass - mass.sum() * prior))
        else:
            grad.append(-(mass * (z - np.dot(prior, z))).sum() / sigma)
            grad.append(-(mass * (z**2 - np.dot(prior, z**2))).sum())
        return -float(np.dot(w, marginal)), np.array(grad)

    if population == "free":
        # Warm start from the (fast) normal fit: items and its normal shape on the grid.
        first = fit_mml(scores, w, start, grid, max_iter, population="normal")
        z0 = (grid - first.mu) / first.sigma
        x0 = np.concatenate([_pack(first.params), -0.5 * z0**2])
    else:
        x0 = np.concatenate([_pack(start), [0.0, 0.0]])
    result = optimize.minimize(
        objective, x0, jac=True, method="L-BFGS-B", options={"maxiter": max_iter}
    )
    if population == "free":
        prior = np.exp(result.x[n_block:] - logsumexp(result.x[n_block:]))
        mu = float(np.dot(prior, grid))
        sigma = float(np.sqrt(np.dot(prior, (grid - mu) ** 2)))
    else:
        mu, sigma = float(result.x[-2]), float(np.exp(result.x[-1]))
    return FitResult(
        population=population,
        params=_unpack(result.x[:n_block], start),
        method="mml",  # the population shape is in the note
        n_rows=int(keep.sum()),
        success=bool(result.success),
        objective=float(result.fun),
        message=str(result.message),
        mu=mu,
        sigma=sigma,
    )
