"""Leave-one-country-out: each pool country (FRA, ITA, MEX) scored from its raw answers alone,
with every table learned without it (issue 14, docs/indices-results.md).

The tables a country's rows could teach are rebuilt from the other two countries' rows: the
ISEI map (most frequent official BMMJ1/BFMJ2 per OCOD1/OCOD2, as int_learned_isei_map) with its
calibrated fallback (independent.isei_fallbacks, as int_isei_map), the country's BELONG
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
}
TARGET = {
    "tmins": 0.995,
    "durecec": 0.995,
    "paredint": 0.995,
    "hisei": 0.97,
    "belong": 0.99,
    "escs": 0.97,
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
    isei.update(independent.isei_fallbacks(exact, base.ganzeboom, n_rows=_n(pairs)))
    return dataclasses.replace(
        base,
        isei=isei,
        pared={k: v for k, v in base.pared.items() if k[0] != cnt},
        belong_country={k: v for k, v in base.belong_country.items() if k[0] != cnt},
        escs_imputation={k: v for k, v in base.escs_imputation.items() if k[0] != cnt},
    )


def _n(pairs: dict[str, Counter]) -> dict[str, int]:
    return {code: sum(c.values()) for code, c in pairs.items()}


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


# Where the targets are not met (docs/indices-results.md): HISEI/ESCS within 0.01 and their
# means, from ISCO codes only the left-out country carries (the fallback's error); France's
# BELONG, whose national item parameters only France's own rows can teach.
KNOWN_SHORT = {
    "FRA": {"hisei", "escs", "belong"},
    "ITA": {"hisei", "escs"},
    "MEX": {"hisei", "escs"},
}


def _assert(cnt, cleaned):
    misses = _check(cnt, cleaned)
    hard = [m for m in misses if m.split()[0] not in KNOWN_SHORT[cnt]]
    assert not hard, f"{cnt}: {hard}"
    res = score_country(cnt, cleaned)
    # the calibrated fallback must at least keep HISEI's mean within 0.5 ISEI points
    assert abs(res["hisei"]["mean_computed"] - res["hisei"]["mean_official"]) < 0.5


def test_leave_out_italy(cleaned):
    _assert("ITA", cleaned)


@pytest.mark.slow
@pytest.mark.parametrize("cnt", ["FRA", "MEX"])
def test_leave_out_country(cnt, cleaned):
    _assert(cnt, cleaned)
