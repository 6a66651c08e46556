"""Generate seeds/codebook_items.csv: every student variable's type and valid domain.

The staging macro (`macros/clean_pisa_value.sql`) reads this seed at compile time to
type and clean each raw TEXT column. Run `python -m pisa_pulse.indices.codebook_seed` after the
codebook changes and commit the CSV.

Rules (docs/indices.md, "Missing values"):
- kind: `text` for `$n.` formats, `integer` for `n.0`, `numeric` for `n.d`;
- missing codes: the explicit numeric `na_values`, else (when the codebook lists the
  `.V/.N/.I/.M` SPSS codes) 5/7/8/9 scaled to the integer-part width (95…99, 995…999);
- valid range: the labelled codes' min…max, or the ranges docs/indices.md states for the
  learning-time items; labelled text items must be one of their labels.
"""

from __future__ import annotations

import csv
import re
import sys
from pathlib import Path

from pisa_pulse.core import codebook
from pisa_pulse.core.config import REPO_ROOT

SEED_PATH = REPO_ROOT / "seeds" / "codebook_items.csv"
FIELDS = [
    "pisa_variable",
    "column_name",
    "kind",
    "width",
    "valid_min",
    "valid_max",
    "valid_codes",
    "missing_codes",
    "domain_source",
]
_FORMAT = re.compile(r"^(\$?)(\d+)\.(\d*)$")
SPSS_CODES = {".V", ".N", ".I", ".M"}

# Plausibility domains for the numeric variables the codebook gives no labels for: every
# number the pipeline reads has one (docs/domains.md). A value outside becomes NULL with the
# reason `out_of_range`. Each bound says where it comes from; "observed" ranges are those of
# the 1,269 real PISA 2018 rows in data/pisa2018 (tests/core/test_domains.py keeps every real
# value inside its domain).
_ISEI = (10, 89, "ISEI-08 scale: 10-89 by construction (Ganzeboom 2010); observed 11.0-89.0")
_WLE = (-10, 10, "questionnaire scale (WLE, OECD mean 0, SD 1): a WLE is finite; observed -5.4-5.4")
_PV = (0, 1000, "PISA reporting scale (OECD mean 500, SD 100); observed 45.8-809.7")
# The largest final student weight of the real rows is 1,081.6 (MEX); no country's can exceed
# its population of 15-year-olds per sampled student, and the largest in PISA 2018 stays in
# the low thousands, so 5,000 leaves a margin of 4.6x the observed maximum.
W_FSTUWT_MAX = 5000
RANGE_OVERRIDES = {
    "ST059Q01TA": (0, 40, "docs/indices.md (learning time)"),
    "ST059Q02TA": (0, 40, "docs/indices.md (learning time)"),
    "ST059Q03TA": (0, 40, "docs/indices.md (learning time)"),
    "ST059Q04HA": (0, 40, "docs/indices.md (learning time)"),
    "ST060Q01NA": (10, 80, "docs/indices.md (learning time)"),
    "ST061Q01NA": (10, 120, "docs/indices.md (learning time)"),
    "W_FSTUWT": (0, W_FSTUWT_MAX, "weights are positive; 4.6x the observed maximum 1,081.6"),
    "SENWT": (0, 50, "senate weight (sums to 5,000 per country); observed 0.01-3.7"),
    "TMINS": (0, 3000, "OECD: TMINS above 3,000 minutes is set to missing by construction"),
    "LMINS": (0, 4800, "ST059 (0-40 periods) x ST061 (10-120 minutes); observed 0-1,750"),
    "MMINS": (0, 4800, "ST059 (0-40 periods) x ST061 (10-120 minutes); observed 0-1,200"),
    "SMINS": (0, 4800, "ST059 (0-40 periods) x ST061 (10-120 minutes); observed 0-1,200"),
    "PAREDINT": (3, 16, "the seven values of seeds/paredint_years.csv: 3-16 years"),
    "PARED": (0, 20, "years of schooling by country; observed 3-17 (learned tables 3-17)"),
    "BMMJ1": _ISEI,
    "BFMJ2": _ISEI,
    "BSMJ": _ISEI,
    "HISEI": _ISEI,
    # Warm's WLE of the all-lowest and all-highest patterns under every shipped block lies in
    # -8.78 .. 5.40 (homepos_model.wle); the margin admits calibrated national blocks.
    "HOMEPOS": (-10, 8, "Warm WLE of the extreme patterns: -8.8 .. 5.4 under every block"),
    # The international WLE lookup spans -3.32 .. 2.79 and the learned country patterns
    # -3.24 .. 3.23 (seeds/belong_wle_lookup_international.csv, learned_belong_*).
    "BELONG": (-4, 4, "WLE of the six BELONG items: -3.32 .. 3.23 over every pattern"),
    # ESCS = -3.214 + 0.0191 HISEI + 0.160 PAREDINT + 0.423 HOMEPOS (escs_2018_coefficients)
    # spans -6.77 .. 4.43 over the components' domains; a margin of 2 either side.
    "ESCS": (-9, 7, "ESCS formula over its components' domains: -6.8 .. 4.4, margin 2"),
    "AGE": (15, 17, "PISA's target population: 15 years 3 months to 16 years 2 months"),
    "GRADE": (-4, 4, "grade relative to the country's modal grade; observed -3 .. 2"),
    "ST003D03T": (2000, 2005, "year of birth of the PISA 2018 cohort (2002, 2003)"),
    "ST016Q01NA": (0, 10, "life satisfaction on a 0-10 scale"),
    "STUBMI": (10, 80, "body-mass index; observed 11.7-61.7"),
}


def _number(text: str) -> bool:
    return re.fullmatch(r"-?\d+(\.\d+)?", text) is not None


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def item_row(entry: dict) -> dict[str, str]:
    var = entry["variable_key"]
    dollar, total, decimals = _FORMAT.match(entry["format_specifier"]).groups()
    total, decimals = int(total), int(decimals or 0)
    kind = "text" if dollar else ("integer" if decimals == 0 else "numeric")
    width = total if (dollar or decimals == 0) else total - decimals - 1
    na_values = entry.get("na_values") or []
    labels = [kv["key"] for kv in entry.get("variable_key_value") or []]

    explicit = [v for v in na_values if v not in SPSS_CODES and v != "SYSTEM MISSING"]
    if kind == "text":
        missing = explicit
    elif explicit:
        missing = [_fmt(float(v)) for v in explicit if _number(v)]
    elif SPSS_CODES & set(na_values):
        top = 10**width
        missing = [str(top - k) for k in (5, 3, 2, 1)]
    else:
        missing = []

    valid_min = valid_max = ""
    valid_codes: list[str] = []
    source = "none"
    if var in RANGE_OVERRIDES:
        lo, hi, source = RANGE_OVERRIDES[var]
        valid_min, valid_max = _fmt(lo), _fmt(hi)
    elif kind != "text" and var.startswith("W_FSTURWT"):
        # Fay's replicates (k = 0.5) are 0.5 or 1.5 times the final weight.
        valid_min, valid_max = "0", _fmt(1.5 * W_FSTUWT_MAX)
        source = "replicate weights: at most 1.5x the largest final weight"
    elif kind != "text" and re.fullmatch(r"PV\d+[A-Z]+", var):
        valid_min, valid_max, source = _fmt(_PV[0]), _fmt(_PV[1]), _PV[2]
    elif labels and kind == "text":
        valid_codes = [k for k in labels if k not in missing]
        source = "codebook labels"
    elif labels and all(_number(k) for k in labels):
        keys = [float(k) for k in labels if _fmt(float(k)) not in missing]
        if keys:
            valid_min, valid_max = _fmt(min(keys)), _fmt(max(keys))
            source = "codebook labels"
    if kind != "text" and not valid_min and not valid_max and not labels:
        if kind == "numeric":
            valid_min, valid_max, source = _fmt(_WLE[0]), _fmt(_WLE[1]), _WLE[2]
        else:  # counts and identifiers: non-negative and within the field's width
            valid_min, valid_max = "0", str(10**width - 1)
            source = "non-negative, within the codebook's field width"
    return {
        "pisa_variable": var,
        "column_name": var.lower(),
        "kind": kind,
        "width": str(width),
        "valid_min": valid_min,
        "valid_max": valid_max,
        "valid_codes": "|".join(valid_codes),
        "missing_codes": "|".join(missing),
        "domain_source": source,
    }


def write(path: Path = SEED_PATH) -> int:
    rows = [item_row(e) for e in codebook.entries()]
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


if __name__ == "__main__":
    n = write(Path(sys.argv[1]) if len(sys.argv) > 1 else SEED_PATH)
    print(f"wrote {n} codebook items to {SEED_PATH if len(sys.argv) < 2 else sys.argv[1]}")
