"""Messiness: the dirt real application databases hold, applied to a few fields per row.

`messiness` is the share of answer cells (the 1,118 codebook columns, never `id`
or `created_at`) that a submission gets wrong; each wrong cell gets one of the
kinds below that actually changes its value. On top of that, a share
`messiness / 5` of rows is submitted as a whole row of `NA`. Seeded: the same
seed gives the same dirt.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from functools import cache

from pulse import codebook

DEFAULT_MESSINESS = 0.01  # 1 % of cells, 0.2 % of rows all NA
ROW_NA_FACTOR = 0.2

NULL = "\\N"  # COPY text format: SQL NULL

# kind: relative weight among the kinds that apply to a cell
KIND_WEIGHTS = {
    "na": 30,  # a value replaced by 'NA'
    "empty": 15,  # ''
    "null": 15,  # SQL NULL
    "spaces": 15,  # ' 3', '3 ', ' 3 '
    "decimal": 10,  # an integer written as '3.0'
    "missing_code": 10,  # SPSS missing code of the field's width: 7/8/9, 97/98/99, 997, …
    "out_of_range": 5,  # a key pressed twice ('3' -> '33'), a continuous value x 1000
    "lower_case": 200,  # country codes only: 'fra'
}

_INTEGER = re.compile(r"-?\d+")
_NUMBER = re.compile(r"-?\d*\.?\d+")
# Field width -> SPSS missing codes (not applicable, invalid, no response): seeds/missing_codes.csv
_MISSING_BY_WIDTH = {
    1: ("7", "8", "9"),
    2: ("97", "98", "99"),
    3: ("997", "998", "999"),
    4: ("9997", "9998", "9999"),
    7: ("9999999",),
    8: ("99999999",),
}


@dataclass(frozen=True)
class Column:
    name: str
    numeric: bool  # format 'w.d' (as opposed to '$w.')
    decimals: int
    missing_codes: tuple[str, ...]
    country_code: bool


def _column(entry: dict) -> Column:
    fmt = entry["format_specifier"] or "$8."
    numeric = not fmt.startswith("$")
    width_s, _, dec_s = fmt.lstrip("$").partition(".")
    width, decimals = int(width_s or 8), int(dec_s or 0)
    if numeric and decimals:  # '7.4' -> '99.0000': nines in the integer part
        codes: tuple[str, ...] = ("9" * max(1, width - decimals - 1) + "." + "0" * decimals,)
    else:
        codes = _MISSING_BY_WIDTH.get(width, ("9" * width,))
    name = entry["variable_key"].lower()
    return Column(name, numeric, decimals, codes, name == "cnt")


@cache
def columns() -> tuple[Column, ...]:
    return tuple(_column(e) for e in codebook.entries())


def mess_value(value: str, col: Column, rng: random.Random) -> str:
    """One messy version of `value` (COPY-escaped text, NULL as '\\N'), always different."""
    kinds = ["null"]
    if value != "NA":
        kinds += ("na", "spaces")
    if value != "":
        kinds.append("empty")
    integer = col.numeric and _INTEGER.fullmatch(value) is not None
    if integer:
        kinds += ("decimal", "out_of_range")
    elif col.numeric and _NUMBER.fullmatch(value):
        kinds.append("out_of_range")
    if value not in col.missing_codes:
        kinds.append("missing_code")
    if col.country_code and value.isupper():
        kinds.append("lower_case")
    pick = rng.random() * sum(KIND_WEIGHTS[k] for k in kinds)
    for kind in kinds:
        pick -= KIND_WEIGHTS[kind]
        if pick < 0:
            break
    if kind == "null":
        return NULL
    if kind == "na":
        return "NA"
    if kind == "empty":
        return ""
    if kind == "spaces":
        return (" ", "  ")[rng.random() < 0.3] + value + ("", " ")[rng.random() < 0.5]
    if kind == "decimal":
        return value + ".0"
    if kind == "out_of_range":
        return value + value[-1] if integer else f"{float(value) * 1000:.{col.decimals}f}"
    if kind == "missing_code":
        return col.missing_codes[int(rng.random() * len(col.missing_codes))]
    return value.lower()


class Messifier:
    """Applies messiness to rows given as lists of COPY-escaped strings, in place."""

    def __init__(self, rate: float | None = None, rng: random.Random | None = None):
        self.rate = DEFAULT_MESSINESS if rate is None else float(rate)
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"messiness must be between 0 and 1, not {rate}")
        self.rng = rng or random.Random()
        self.columns = columns()
        self._log_keep = math.log(1.0 - self.rate) if 0 < self.rate < 1 else None

    def apply(self, row: list[str]) -> list[str]:
        if self.rate == 0.0:
            return row
        rng = self.rng
        if rng.random() < self.rate * ROW_NA_FACTOR:
            row[:] = ["NA"] * len(row)
            return row
        n = len(row)
        pos = self._next_gap(rng) - 1
        while pos < n:  # a Bernoulli(rate) process over the cells, by geometric gaps
            row[pos] = mess_value(row[pos], self.columns[pos], rng)
            pos += self._next_gap(rng)
        return row

    def _next_gap(self, rng: random.Random) -> int:
        if self._log_keep is None:  # rate == 1
            return 1
        return int(math.log(1.0 - rng.random()) / self._log_keep) + 1
