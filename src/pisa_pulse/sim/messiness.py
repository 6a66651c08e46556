"""Messiness: the dirt real application databases hold, applied to a few fields per row.

`messiness` is the share of answer cells (the 1,118 codebook columns, never `id`
or `created_at`) whose text a submission gets wrong; each wrong cell gets one of the
kinds below, drawn by weight among the kinds that apply to its value, and every kind
actually changes the cell's text. Most kinds make the value unusable (staging nulls
it with a counted reason); a few only respell a valid value (`spaces`, `decimal`,
and the `plus_sign` / `minus_zero` spellings: ' 3', '3.0', '+3', '-0'), which
staging reads back as the same number. On top of that, a share `messiness / 5` of
rows is submitted as a whole row of `NA`. Seeded: the same seed gives the same dirt.

`messiness` lies in [0, MAX_MESSINESS]; at 1.0 every answer cell of every row that
is not a whole row of `NA` is wrong, and 20 % of rows are whole rows of `NA`.
docs/simulator.md ("Messiness") has the table of kinds and their measured rates.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from decimal import Decimal
from functools import cache

from pisa_pulse.core import codebook

DEFAULT_MESSINESS = 0.01  # 1 % of cells, 0.2 % of rows all NA
MAX_MESSINESS = 1.0  # every cell of the rows that are not all NA; 20 % of rows all NA
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
    "spelling": 5,  # an odd spelling of a number: SPELLING_WEIGHTS
    "lower_case": 200,  # country codes only: 'fra'
}

# `spelling`: family -> relative weight among the families that apply to the value.
# Every family applies to every number except the last two; all but those two are
# invalid spellings (staging: `malformed`); `plus_sign` and `minus_zero` are valid
# spellings of the same number (staging reads '+3' as 3 and '-0' as 0).
SPELLING_WEIGHTS = {
    "nan": 10,  # 'NaN', 'nan'
    "infinity": 10,  # 'Infinity', '-Infinity', 'inf'
    "exponent": 15,  # the same number in scientific notation: '3e+0', '5.29e-1'
    "decimal_comma": 15,  # '3.5' -> '3,5'; an integer '3' -> '3,0'
    "thousands": 15,  # '1234' -> '1,234' / '1 234' / '1\u00a0234'; below 1,000: '3' -> '3,000'
    "unicode_digits": 15,  # '3' -> '３' (full-width), '٣' (Arabic-Indic), '۳', '३'
    "huge": 10,  # an integer of 16 to 40 digits, too big for any integer type
    "plus_sign": 5,  # valid: '3' -> '+3' (values without a sign)
    "minus_zero": 5,  # valid: '0' -> '-0' (zero values without a sign)
}
INVALID_SPELLINGS = frozenset(SPELLING_WEIGHTS) - {"plus_sign", "minus_zero"}
_THOUSANDS_SEPARATORS = (",", " ", "\u00a0")
_DIGIT_ZEROS = (0xFF10, 0x0660, 0x06F0, 0x0966)  # full-width, Arabic-Indic, Persian, Devanagari

_INTEGER = re.compile(r"-?\d+")
_NUMBER = re.compile(r"-?\d*\.?\d+")
_SPSS_CODES = {".V", ".N", ".I", ".M"}
# Field width -> SPSS missing codes (not applicable, invalid, no response):
# docs/reference/missing_codes.csv
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
    # A variable whose codebook lists no SPSS codes (the weights, ids, plausible values) has
    # no missing code: '99.00000' planted there would be a plausible weight of 99, not a code.
    if not _SPSS_CODES & set(entry.get("na_values") or []):
        codes = ()
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
        kinds += ("decimal", "out_of_range", "spelling")
    elif col.numeric and _NUMBER.fullmatch(value):
        kinds += ("out_of_range", "spelling")
    if col.missing_codes and value not in col.missing_codes:
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
    if kind == "spelling":
        return spell(value, rng)
    return value.lower()


def spelling_families(value: str) -> list[str]:
    """The `spelling` families that apply to a number written as `value` (ASCII, clean)."""
    families = [f for f in SPELLING_WEIGHTS if f not in ("plus_sign", "minus_zero")]
    if not value.startswith(("-", "+")):
        families.append("plus_sign")
        if float(value) == 0:
            families.append("minus_zero")
    return families


def spell(value: str, rng: random.Random, family: str | None = None) -> str:
    """`value` (a number in ASCII) in an odd spelling of `family`, drawn by weight if None."""
    if family is None:
        families = spelling_families(value)
        pick = rng.random() * sum(SPELLING_WEIGHTS[f] for f in families)
        for family in families:
            pick -= SPELLING_WEIGHTS[family]
            if pick < 0:
                break
    if family == "nan":
        return rng.choice(("NaN", "nan"))
    if family == "infinity":
        return rng.choice(("Infinity", "-Infinity", "inf"))
    if family == "exponent":
        return f"{Decimal(value):e}"
    if family == "decimal_comma":
        return value.replace(".", ",") if "." in value else value + ",0"
    if family == "thousands":
        sign, body = ("-", value[1:]) if value.startswith("-") else ("", value)
        whole, point, fraction = body.partition(".")
        whole = (whole or "0") if len(whole) > 3 else (whole or "0") + "000"
        groups = [whole[max(0, i - 3) : i] for i in range(len(whole), 0, -3)][::-1]
        return sign + rng.choice(_THOUSANDS_SEPARATORS).join(groups) + point + fraction
    if family == "unicode_digits":
        zero = rng.choice(_DIGIT_ZEROS)
        return "".join(chr(zero + ord(c) - 48) if "0" <= c <= "9" else c for c in value)
    if family == "huge":
        n = rng.randint(16, 40)
        return str(rng.randint(1, 9)) + "".join(str(rng.randint(0, 9)) for _ in range(n - 1))
    if family == "plus_sign":
        return "+" + value
    if family == "minus_zero":
        return "-" + value
    raise ValueError(f"no spelling family {family!r}")


class Messifier:
    """Applies messiness to rows given as lists of COPY-escaped strings, in place."""

    def __init__(self, rate: float | None = None, rng: random.Random | None = None):
        self.rate = DEFAULT_MESSINESS if rate is None else float(rate)
        if not 0.0 <= self.rate <= MAX_MESSINESS:
            raise ValueError(f"messiness must be between 0 and {MAX_MESSINESS:g}, not {rate}")
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
