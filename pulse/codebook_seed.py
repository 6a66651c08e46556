"""Generate seeds/codebook_items.csv: every student variable's type and valid domain.

The staging macro (`macros/clean_pisa_value.sql`) reads this seed at compile time to
type and clean each raw TEXT column. Run `python -m pulse.codebook_seed` after the
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

from pulse import codebook
from pulse.config import REPO_ROOT

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

# Valid ranges stated in docs/indices.md for items the codebook gives no labels for.
RANGE_OVERRIDES = {
    "ST059Q01TA": (0, 40),
    "ST059Q02TA": (0, 40),
    "ST059Q03TA": (0, 40),
    "ST059Q04HA": (0, 40),
    "ST060Q01NA": (10, 80),
    "ST061Q01NA": (10, 120),
    "W_FSTUWT": (0, None),
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
        lo, hi = RANGE_OVERRIDES[var]
        valid_min, valid_max = _fmt(lo), ("" if hi is None else _fmt(hi))
        source = "docs/indices.md"
    elif labels and kind == "text":
        valid_codes = [k for k in labels if k not in missing]
        source = "codebook labels"
    elif labels and all(_number(k) for k in labels):
        keys = [float(k) for k in labels if _fmt(float(k)) not in missing]
        if keys:
            valid_min, valid_max = _fmt(min(keys)), _fmt(max(keys))
            source = "codebook labels"
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
