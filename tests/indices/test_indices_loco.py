"""Leave-one-country-out: each pool country (FRA, ITA, MEX) scored from its raw answers alone,
with every table learned without it (issue 14, docs/indices-results.md).

The tables a country's rows could teach are rebuilt from the other two countries' rows: the
ISEI map (most frequent official BMMJ1/BFMJ2 per OCOD1/OCOD2, as int_learned_isei_map) with the
ISEI-08 table PISA 2018 used for every other code (a public table, not taught by any row, as
int_isei_map) and the pseudo-codes 9701-9703 at 17 (PISA's rule), the country's BELONG
patterns (none: the international lookup) and PARED years (none). The scoring is the
independent checker's (src/pisa_pulse/realtime/independent.py), which test_check_independent holds
equal to the warehouse's. Official values are the oracle and are blanked for the scoring.

HOMEPOS cannot be calibrated on 311-593 rows (docs/homepos.md): ESCS is scored with the
official HOMEPOS standing in for a calibrated one, and with the computed HISEI and PAREDINT.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from decimal import Decimal

import pytest

from pisa_pulse.loader.raw_fixture import pool_rows
from pisa_pulse.realtime import independent

TOLERANCE = {
    "tmins": Decimal(0),
    "durecec": Decimal(0),
    "paredint": Decimal(0),
    "hisei": Decimal("0.01"),
    "belong": Decimal("0.002"),
    "escs": Decimal("0.01"),
    # ESCS of the students with all three components (none imputed)
    "escs_complete": Decimal("0.01"),
}
TARGET = {
    "tmins": 0.995,
    "durecec": 0.995,
    "paredint": 0.995,
    "hisei": 0.97,
    "belong": 0.99,
    "escs": 0.97,
    "escs_complete": 0.97,
}
MEAN_TOLERANCE = 0.005


@pytest.fixture(scope="module")
def cleaned():
    domains = independent.read_domains()
    out = []
    for raw in pool_rows():
        a = {v: independent.clean(raw[v], domains[v.lower()]) for v in independent.ANSWERS}
        official = {x: independent.clean(raw[x.upper()], domains[x]) for x in independent.INDICES}
        out.append((raw["CNT"], a, official))
    return out


def params_without(cnt: str, cleaned) -> independent.Params:
    base = independent.load_params(None)
    pairs: dict[str, Counter] = {}
    for c, a, off in cleaned:
        if c == cnt:
            continue
        for code, value in ((a["OCOD1"], off["bmmj1"]), (a["OCOD2"], off["bfmj2"])):
            if code is not None and value is not None:
                pairs.setdefault(code, Counter())[value] += 1
    # mode() within group (order by isei): the most frequent, the smallest on ties
    exact = {
        code: (min(v for v, n in counts.items() if n == max(counts.values())), "learned")
        for code, counts in pairs.items()
    }
    isei = dict(exact)
    isei.update({code: (Decimal(17), "rule") for code in ("9701", "9702", "9703")})
    for r in independent._csv("isco08_to_isei08_ganzeboom.csv"):
        isei.setdefault(r["isco08"], (Decimal(r["isei08"]), "isei08"))
    return dataclasses.replace(
        base,
        isei=isei,
        pared={k: v for k, v in base.pared.items() if k[0] != cnt},
        belong_country={k: v for k, v in base.belong_country.items() if k[0] != cnt},
        escs_imputation={k: v for k, v in base.escs_imputation.items() if k[0] != cnt},
    )


def score_country(cnt: str, cleaned) -> dict:
    """Per index: rows compared, share within tolerance, weighted means computed/official."""
    params = params_without(cnt, cleaned)
    blank = dict.fromkeys(independent.INDICES)
    hits: Counter = Counter()
    n: Counter = Counter()
    sums: dict[str, list[Decimal]] = {x: [Decimal(0)] * 4 for x in TOLERANCE}
    for c, a, off in cleaned:
        if c != cnt:
            continue
        r = independent.indices(cnt, a, blank, params, lambda _c, _s: None)["computed"]
        r["escs"], _ = independent.escs(cnt, r["hisei"], r["paredint"], off["homepos"], params)
        complete = None not in (r["hisei"], r["paredint"], off["homepos"])
        r["escs_complete"] = r["escs"] if complete else None
        off = {**off, "escs_complete": off["escs"] if complete else None}
        w = a["W_FSTUWT"]
        for x, tol in TOLERANCE.items():
            got, want = r[x], off[x]
            if got is None and want is None:
                continue
            n[x] += 1
            hits[x] += got is not None and want is not None and abs(got - want) <= tol
            s = sums[x]
            if got is not None:
                s[0] += w * got
                s[1] += w
            if want is not None:
                s[2] += w * want
                s[3] += w
    return {
        x: {
            "n": n[x],
            "share": hits[x] / n[x],
            "mean_computed": float(sums[x][0] / sums[x][1]),
            "mean_official": float(sums[x][2] / sums[x][3]),
        }
        for x in TOLERANCE
    }


def _check(cnt: str, cleaned) -> list[str]:
    res = score_country(cnt, cleaned)
    for x, r in res.items():
        print(
            f"{cnt} {x}: n={r['n']} within={r['share']:.4f} "
            f"mean computed={r['mean_computed']:.4f} official={r['mean_official']:.4f}"
        )
    misses = [f"{x} {r['share']:.4f}" for x, r in res.items() if r["share"] < TARGET[x]]
    misses += [
        f"{x} mean {r['mean_computed'] - r['mean_official']:+.4f}"
        for x, r in res.items()
        if abs(r["mean_computed"] - r["mean_official"]) > MEAN_TOLERANCE
    ]
    return misses


# Where the targets are not met (docs/indices-results.md): ESCS over all students, because the
# OECD imputed a missing component by regression plus a random residual, which no rule can
# reproduce row by row (5-6% of France's and Italy's students; with all three components ESCS
# is within 0.01 for every student), and Italy's ESCS mean with it; France's BELONG, whose
# national item parameters only France's own rows can teach.
KNOWN_SHORT = {
    "FRA": {"escs", "belong"},
    "ITA": {"escs"},
    "MEX": set(),
}


def _assert(cnt, cleaned):
    misses = _check(cnt, cleaned)
    hard = [m for m in misses if m.split()[0] not in KNOWN_SHORT[cnt]]
    assert not hard, f"{cnt}: {hard}"
    res = score_country(cnt, cleaned)
    # what stays short stays close: ESCS within 0.01 for >= 93% and its mean within 0.01
    assert res["escs"]["share"] >= 0.93
    assert abs(res["escs"]["mean_computed"] - res["escs"]["mean_official"]) < 0.01


def test_leave_out_italy(cleaned):
    _assert("ITA", cleaned)


@pytest.mark.slow
@pytest.mark.parametrize("cnt", ["FRA", "MEX"])
def test_leave_out_country(cnt, cleaned):
    _assert(cnt, cleaned)
