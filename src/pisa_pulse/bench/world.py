"""`pulse bench world`: does the running dashboard's world look like PISA 2018?

Reads the served country means from the Forage endpoints /forage/escs and
/forage/early_education_and_belonging of a running stack (`make run`), compares them
with the published means (data/reference/country_means_2018.csv): Pearson r and the share
of countries within 0.10 (ESCS) / 0.05 (BELONG). Targets (issue 15): ESCS r >= 0.95 with
>= 90 % within 0.10, BELONG r >= 0.9 with >= 90 % within 0.05. Writes docs/sim-world.png
(served vs published, one point per country) and docs/bench/world.json.
"""

from __future__ import annotations

import json
import urllib.request

import numpy as np

from pisa_pulse.bench.common import save
from pisa_pulse.core import config
from pisa_pulse.sim import world

HELP = "served ESCS/BELONG per country vs the published PISA 2018 means (needs a running stack)"
IN_ALL = False  # needs `make run` and a filled world
PNG = config.REPO_ROOT / "docs" / "sim-world.png"
CHECKS = {"escs": (0.10, 0.95), "belong": (0.05, 0.90)}  # (tolerance, minimum r)


def add_arguments(p) -> None:
    p.add_argument("--url", help="Datasette base URL (default: the running `pulse up`)")
    p.add_argument("--label", default="", help="what was run, written on the plot")


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.load(r)


def served(base: str) -> dict[str, dict[str, float]]:
    """index -> CNT -> served country mean."""
    escs = {d["id"]: d["value"] for d in _get(f"{base}/forage/escs")["datasets"]}
    belong = {
        d["id"]: d["data"][0]["y"]
        for d in _get(f"{base}/forage/early_education_and_belonging")["datasets"]
        if d["data"]
    }
    return {"escs": escs, "belong": belong}


def compare(got: dict[str, float], published: dict[str, float], tol: float) -> dict:
    codes = sorted(c for c in published if got.get(c) is not None)
    x = np.array([published[c] for c in codes])
    y = np.array([got[c] for c in codes])
    diff = np.abs(y - x)
    return {
        "countries": len(codes),
        "r": float(np.corrcoef(x, y)[0, 1]) if len(codes) > 2 else float("nan"),
        "within": float((diff <= tol).mean()) if codes else float("nan"),
        "max_abs_diff": float(diff.max()) if codes else float("nan"),
        "worst": [c for _, c in sorted(zip(-diff, codes, strict=True))[:5]],
        "points": {c: [float(a), float(b)] for c, a, b in zip(codes, x, y, strict=True)},
    }


def plot(results: dict, label: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    for ax, (name, res) in zip(axes, results.items(), strict=True):
        pts = np.array(list(res["points"].values()))
        tol = CHECKS[name][0]
        lo, hi = pts.min() - 0.1, pts.max() + 0.1
        ax.fill_between([lo, hi], [lo - tol, hi - tol], [lo + tol, hi + tol], alpha=0.15)
        ax.plot([lo, hi], [lo, hi], lw=0.8)
        ax.scatter(pts[:, 0], pts[:, 1], s=14)
        for code, (a, b) in res["points"].items():
            ax.annotate(code, (a, b), fontsize=5, alpha=0.7)
        ax.set_xlabel(f"published PISA 2018 mean of {name.upper()}")
        ax.set_ylabel(f"served by the dashboard ({name.upper()})")
        ax.set_title(
            f"{name.upper()}: r = {res['r']:.3f}, {res['within']:.0%} within {tol:.2f} "
            f"({res['countries']} countries)",
            fontsize=9,
        )
    fig.suptitle(label, fontsize=8)
    fig.tight_layout()
    fig.savefig(PNG, dpi=120)
    plt.close(fig)


def run(args) -> int:
    base = (args.url or config.read_state().get("datasette_url") or "").rstrip("/")
    if not base:
        print("pulse bench world: no running stack (start one with `make run`) and no --url")
        return 2
    means = world.published_means()
    got = served(base)
    results, ok = {}, True
    for j, name in enumerate(CHECKS):
        published = {c: m[j] for c, m in means.items() if not np.isnan(m[j])}
        res = results[name] = compare(got[name], published, CHECKS[name][0])
        tol, r_min = CHECKS[name]
        passed = res["r"] >= r_min and res["within"] >= 0.9
        ok &= passed
        print(
            f"{name:6s} {res['countries']} countries  r {res['r']:.3f} (target {r_min})  "
            f"within {tol:.2f}: {res['within']:.0%} (target 90%)  max |diff| "
            f"{res['max_abs_diff']:.3f}  worst {','.join(res['worst'])}  "
            f"{'PASS' if passed else 'FAIL'}"
        )
    plot(results, args.label)
    save("world", {"label": args.label, "results": results})
    print(f"scatter: {PNG.relative_to(config.REPO_ROOT)}")
    return 0 if ok else 1
