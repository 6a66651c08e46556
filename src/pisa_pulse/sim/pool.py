"""The pool of real PISA 2018 rows the simulator submits, and its per-country variants.

Rows are stored clean first (see `normalise`), as COPY-escaped strings in codebook
order. FRA, ITA and MEX submit their own rows; every other country submits the
whole pool with the country fields rewritten (`variant_overrides`) and the
OECD-derived, country-dependent indices set to NA so the pipeline must compute them.
"""

from __future__ import annotations

import csv
import gzip
import re
from functools import cache

from pisa_pulse.core import codebook
from pisa_pulse.sim.countries import OECD_MEMBERS, POOL_COUNTRIES, iso_numeric

POOL_PATH = codebook.DATA_DIR / "students_fra_ita_mex.csv.gz"
NOT_CODEBOOK = ("test", "cntry")  # extra columns of the CSV, dropped

# OECD indices scaled or mapped per country: NA for rewritten countries (docs/simulator.md).
COUNTRY_DEPENDENT_INDICES = ("pared", "homepos", "wealth", "cultposs", "hedres", "ictres", "escs")

_INTEGER_AS_FLOAT = re.compile(r"-?\d+\.0")


def normalise(value: str) -> str:
    """A CSV value as the clean application database stores it.

    Empty -> 'NA'; an integer written as a float ('1.0') -> '1' ('-0.0' -> '0');
    everything else exactly as given (codes such as '0250001' keep their zeros).
    """
    if value == "":
        return "NA"
    if _INTEGER_AS_FLOAT.fullmatch(value):
        value = value[:-2]
        return "0" if value == "-0" else value
    return value


def copy_escape(value: str) -> str:
    """Escape a value for COPY's text format."""
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        for raw, escaped in (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r")):
            value = value.replace(raw, escaped)
    return value


@cache
def _column_index() -> dict[str, int]:
    return {name: i for i, name in enumerate(codebook.variables())}


@cache
def clean_rows() -> dict[str, list[list[str]]]:
    """The pool's rows by country (CNT), clean, in codebook column order."""
    names = codebook.variables()
    with gzip.open(POOL_PATH, "rt", newline="") as f:
        reader = csv.reader(f)
        header = [h.lower() for h in next(reader)]
        keep = [header.index(name) for name in names]  # raises if a variable is missing
        assert not set(header) - set(names) - set(NOT_CODEBOOK), "unexpected CSV columns"
        by_country: dict[str, list[list[str]]] = {}
        for raw in reader:
            row = [normalise(raw[i]) for i in keep]
            by_country.setdefault(row[1], []).append(row)
    return by_country


@cache
def escaped_rows() -> dict[str, list[list[str]]]:
    return {
        cnt: [[copy_escape(v) for v in row] for row in rows] for cnt, rows in clean_rows().items()
    }


_WEALTH_ITEM = re.compile(r"0\d{3}00[12]")  # "0" + ISO numeric + "001"/"002"
_BIRTH_COUNTRY = re.compile(r"[09]\d{5}")  # "0"/"9" + ISO numeric + 2 digits
_PROGRAMME = re.compile(r"0\d{7}")  # "0" + ISO numeric + 4 digits


def _recode(value: str, n3: str, pattern: re.Pattern) -> str:
    """Replace the 3-digit ISO numeric code inside a national code (positions 1..3)."""
    if pattern.fullmatch(value) and value.strip("9"):  # all nines: a missing code, kept
        return value[0] + n3 + value[4:]
    return value


@cache
def _country_constants(country: str) -> tuple[int, str, list[tuple[int, str]]]:
    col = _column_index()
    iso = iso_numeric()[country]
    n3 = f"{iso:03d}"
    fixed = [
        (col["cnt"], country),
        (col["cntryid"], str(iso)),
        (col["natcen"], f"0{n3}00"),
        (col["subnatio"], f"{n3}0000"),
        (col["oecd"], "1" if country in OECD_MEMBERS else "0"),
    ]
    fixed.extend((col[name], "NA") for name in COUNTRY_DEPENDENT_INDICES)
    return iso, n3, fixed


def overrides(country: str, row: list[str]) -> list[tuple[int, str]]:
    """(column index, value) pairs that turn a pool row into one of `country`'s rows.

    Computed per submission rather than stored: 82 countries x 1,269 rows would not fit.
    """
    if country in POOL_COUNTRIES:
        return []
    col = _column_index()
    iso, n3, out = _country_constants(country)
    out = list(out)
    stratum = row[col["stratum"]]
    if len(stratum) > 3 and stratum != "NA":
        out.append((col["stratum"], country + stratum[3:]))
    for name in ("cntschid", "cntstuid"):  # ISO numeric * 100000 + serial
        if row[col[name]].isdigit():
            out.append((col[name], str(iso * 100000 + int(row[col[name]]) % 100000)))
    for name in ("st011d17ta", "st011d18ta", "st011d19ta"):
        out.append((col[name], _recode(row[col[name]], n3, _WEALTH_ITEM)))
    for name in ("cobn_s", "cobn_m", "cobn_f"):
        out.append((col[name], _recode(row[col[name]], n3, _BIRTH_COUNTRY)))
    out.append((col["progn"], _recode(row[col["progn"]], n3, _PROGRAMME)))
    return out


@cache
def _everything() -> list[list[str]]:
    rows = escaped_rows()
    return [row for cnt in POOL_COUNTRIES for row in rows[cnt]]


def country_rows(country: str) -> list[list[str]]:
    """The pool rows a country draws from (escaped, shared: copy before changing)."""
    return escaped_rows()[country] if country in POOL_COUNTRIES else _everything()


def pool_row(country: str, index: int) -> list[str]:
    """Row `index` of a country's pool, clean (no messiness), as a list of strings."""
    row = list(country_rows(country)[index])
    for i, value in overrides(country, row):
        row[i] = value
    return row
