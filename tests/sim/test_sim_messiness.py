"""Messiness: the share of messy cells is as configured, every kind shows up, and each kind
hits each class of column at the rate docs/simulator.md documents.

`.venv/bin/python tests/sim/test_sim_messiness.py` prints the measured rates by column class
(the table in docs/simulator.md, "Measured rates").
"""

from __future__ import annotations

import math
import random
import re
import sys
import unicodedata
from collections import Counter
from decimal import Decimal

import pytest

from pisa_pulse.core import codebook
from pisa_pulse.sim import api, messiness, pool
from pisa_pulse.sim.messiness import KIND_WEIGHTS, NULL, SPELLING_WEIGHTS, Messifier, spell
from tests.support.sim_world import csv_rows, fetch_dicts


@pytest.fixture
def sim_settings(pulse_env):
    """Settings whose application databases are private to the test; dropped afterwards."""
    yield pulse_env
    api.drop_databases(pulse_env)


def _measure(settings, level: float, n: int, seed: int) -> dict:
    api.setup_databases(settings, ["FRA"])
    api.empty(settings, "FRA")
    api.insert_rows(settings, "FRA", n, seed=seed, messiness=level)
    clean = csv_rows("FRA")
    variables = codebook.variables()
    messy = cells = whole_na = unmatched = 0
    kinds = set()
    for row in fetch_dicts(settings, "FRA"):
        values = [row[v] for v in variables]
        if all(v == "NA" for v in values):
            whole_na += 1
            continue
        key = re.sub(r"\.0$", "", (row["cntstuid"] or "").strip())
        if key not in clean:  # the student id itself was made messy: cannot compare this row
            unmatched += 1
            continue
        want = clean[key]
        for name, value in zip(variables, values, strict=True):
            cells += 1
            if value != want[name]:
                messy += 1
                kinds.add(_kind(value, want[name]))
    return {
        "share": messy / cells,
        "kinds": kinds,
        "whole_na": whole_na,
        "unmatched": unmatched,
    }


def _kind(value, clean: str) -> str:
    if value is None:
        return "null"
    if value == "":
        return "empty"
    if value == "NA":
        return "na"
    if value != value.strip():
        return "spaces"
    if value == clean + ".0":
        return "decimal"
    if value == clean.lower():
        return "lower_case"
    if set(value) <= set("9.0") or value in ("7", "8", "97", "98", "997", "998", "9997", "9998"):
        return "missing_code"
    if _spelling_family(value, clean) is not None:
        return "spelling"
    return "out_of_range"


@pytest.mark.parametrize("level", [0.02, 0.1])
def test_share_of_messy_cells_is_as_configured(sim_settings, level):
    got = _measure(sim_settings, level, n=300, seed=5)
    assert got["share"] == pytest.approx(level, rel=0.15)
    assert got["unmatched"] < 300 * level * 5 + 3


def test_every_kind_of_mess_appears(sim_settings):
    got = _measure(sim_settings, 0.3, n=200, seed=6)
    assert got["kinds"] >= {
        "null",
        "empty",
        "na",
        "spaces",
        "decimal",
        "lower_case",
        "missing_code",
        "out_of_range",
        "spelling",
    }
    assert got["whole_na"] >= 3  # 0.3 * 0.2 = 6 % of 200 rows, expected 12


def test_messiness_zero_is_clean_and_seed_reproduces(sim_settings):
    assert _measure(sim_settings, 0.0, n=60, seed=7)["share"] == 0.0
    api.setup_databases(sim_settings, ["ITA"])
    a = api.insert_rows(sim_settings, "ITA", 20, seed=99, messiness=0.05)
    first = {r["id"]: r for r in fetch_dicts(sim_settings, "ITA")}
    api.empty(sim_settings, "ITA")
    b = api.insert_rows(sim_settings, "ITA", 20, seed=99, messiness=0.05)
    second = list(fetch_dicts(sim_settings, "ITA"))
    assert set(a).isdisjoint(b)  # new ids, same submissions
    key = [v for v in codebook.variables()]
    firsts = sorted(tuple(str(r[k]) for k in key) for r in first.values())
    seconds = sorted(tuple(str(r[k]) for k in key) for r in second)
    assert firsts == seconds


# ---------------------------------------------------------------------------------------
# The `spelling` kind, and the rates of every kind by column class, without a database.

# docs/domains.md, "Spellings": the one spelling of a number staging accepts.
NUMBER_PATTERN = re.compile(r"[+-]?([0-9]{1,15}([.][0-9]{0,15})?|[.][0-9]{1,15})")
VALID_SPELLINGS = {"plus_sign", "minus_zero"}


def _spelling_family(messy: str, clean: str) -> str | None:
    """Which documented spelling of the number `clean` the text `messy` is, if any."""
    if not re.fullmatch(r"-?[0-9]*\.?[0-9]+", clean or ""):
        return None
    if messy in ("NaN", "nan"):
        return "nan"
    if messy in ("Infinity", "-Infinity", "inf"):
        return "infinity"
    if "e" in messy:
        return "exponent" if Decimal(messy) == Decimal(clean) else None
    if any(c.isdigit() and not "0" <= c <= "9" for c in messy):
        ascii_ = "".join(str(unicodedata.digit(c)) if c.isdigit() else c for c in messy)
        return "unicode_digits" if ascii_ == clean else None
    if messy == "+" + clean:
        return "plus_sign"
    if messy == "-" + clean and float(clean) == 0:
        return "minus_zero"
    if re.fullmatch(r"[1-9][0-9]{15,39}", messy):
        return "huge"
    if messy in (clean.replace(".", ","), clean + ",0") and "," in messy:
        return "decimal_comma"
    if re.fullmatch(r"-?[0-9]{1,3}([, \u00a0][0-9]{3})+(\.[0-9]+)?", messy):
        whole = re.sub(r"[, \u00a0]", "", messy)
        sign, body = ("-", clean[1:]) if clean.startswith("-") else ("", clean)
        int_part, point, fraction = body.partition(".")
        int_part = int_part or "0"
        if len(int_part) <= 3:
            int_part += "000"
        return "thousands" if whole == sign + int_part + point + fraction else None
    return None


def _families_for(clean: str) -> set[str]:
    """The families documented for a number: all; '+' only without a sign; '-0' only for 0."""
    out = set(SPELLING_WEIGHTS) - VALID_SPELLINGS
    if not clean.startswith("-"):
        out.add("plus_sign")
        if float(clean) == 0:
            out.add("minus_zero")
    return out


def _within_sampling_error(got: float, expected: float, variance: float) -> bool:
    return abs(got - expected) <= 4 * math.sqrt(variance) + 3


@pytest.mark.parametrize("clean", ["3", "0", "-0.4576", "165.83256", "25002218"])
def test_spelling_plants_each_family_at_its_share(clean):
    n = 6000
    rng = random.Random(41)
    spellings = [spell(clean, rng) for _ in range(n)]
    assert [spell(clean, random.Random(41)) for _ in range(1)] == spellings[:1]
    families = Counter()
    for messy in spellings:
        assert messy != clean
        family = _spelling_family(messy, clean)
        assert family is not None, (clean, messy)
        families[family] += 1
        # invalid spellings never pass for a number; the valid ones are the same number
        if family in VALID_SPELLINGS:
            assert NUMBER_PATTERN.fullmatch(messy) and Decimal(messy) == Decimal(clean)
        else:
            assert not NUMBER_PATTERN.fullmatch(messy.strip(" \t\r\n")), messy
    applicable = _families_for(clean)
    assert set(families) == applicable
    total = sum(SPELLING_WEIGHTS[f] for f in applicable)
    for family in applicable:
        p = SPELLING_WEIGHTS[family] / total
        assert _within_sampling_error(families[family], n * p, n * p * (1 - p)), (family, families)


def test_spelling_is_seeded_and_covers_the_odd_spellings():
    values = ["3", "0", "2", "3.5", "1234", "-0.4576"]
    first = [spell(v, random.Random(seed)) for seed in range(300) for v in values]
    again = [spell(v, random.Random(seed)) for seed in range(300) for v in values]
    assert first == again
    assert first != [spell(v, random.Random(seed + 1)) for seed in range(300) for v in values]
    seen = set(first)
    expected = {"NaN", "Infinity", "-Infinity", "+2", "-0", "3,5", "1,234", "1 234"}
    expected |= {"\uff13", "\u0663"}  # full-width 3, Arabic-Indic 3
    assert expected <= seen, expected - seen
    assert any(re.fullmatch(r"[0-9]{16,40}", s) for s in seen)
    assert any("e" in s for s in seen)


# Column classes (docs/simulator.md): what a cell is, for the rates.
OFFICIAL_INDICES = frozenset(
    "tmins lmins mmins smins durecec misced fisced hisced misced_d fisced_d hisced_d paredint"
    " pared bmmj1 bfmj2 hisei homepos wealth cultposs hedres ictres belong escs".split()
)
CLASSES = ("raw answers", "official indices", "w_fstuwt", "cnt", "other columns")
POOL_COUNTRIES = ("FRA", "ITA", "MEX", "ALB")  # three countries' own rows, one rewritten


def column_class(name: str) -> str:
    if name == "cnt":
        return "cnt"
    if name == "w_fstuwt":
        return "w_fstuwt"
    if name in OFFICIAL_INDICES:
        return "official indices"
    if re.fullmatch(r"(st|ic|ec|fl|wb|pa)[0-9]{3}[a-z0-9_]*", name):
        return "raw answers"
    return "other columns"


def _applicable_kinds(clean: str, col) -> list[str]:
    """The kinds docs/simulator.md says apply to a clean value, independently of the module."""
    kinds = ["null"]
    if clean != "NA":
        kinds += ["na", "spaces"]
    if clean != "":
        kinds.append("empty")
    if col.numeric and re.fullmatch(r"-?[0-9]+", clean):
        kinds += ["decimal", "out_of_range", "spelling"]
    elif col.numeric and re.fullmatch(r"-?[0-9]*\.?[0-9]+", clean):
        kinds += ["out_of_range", "spelling"]
    if col.missing_codes and clean not in col.missing_codes:  # none where the codebook has none
        kinds.append("missing_code")
    if col.name == "cnt" and clean.isupper():
        kinds.append("lower_case")
    return kinds


def _cell_kind(messy: str, clean: str, col) -> str:
    """The kind that turned `clean` into `messy`, read from the text alone."""
    if messy == NULL:
        return "null"
    if messy == "":
        return "empty"
    if messy == "NA":
        return "na"
    if messy in (" " + clean, "  " + clean, " " + clean + " ", "  " + clean + " "):
        return "spaces"
    if messy == clean + ".0":
        return "decimal"
    if col.name == "cnt" and messy == clean.lower():
        return "lower_case"
    if re.fullmatch(r"-?[0-9]+", clean) and messy == clean + clean[-1]:
        return "out_of_range"
    if (
        re.fullmatch(r"-?[0-9]*\.[0-9]+", clean)
        and messy == f"{float(clean) * 1000:.{col.decimals}f}"
    ):
        return "out_of_range"
    if messy in col.missing_codes:
        return "missing_code"
    if _spelling_family(messy, clean) is not None:
        return "spelling"
    raise AssertionError(f"{col.name}: {clean!r} -> {messy!r} is no documented kind")


def measure_by_class(level: float, n_rows: int, seed: int, per_country: int | None = None) -> dict:
    """Mess n_rows pool rows at `level`; per column class: cells, kinds hit, kinds expected.

    Rows cycle through POOL_COUNTRIES and through each one's pool (its first `per_country`
    rows when given, so that the expected shares of each distinct clean row are computed once).
    """
    columns = messiness.columns()
    classes = [column_class(c.name) for c in columns]
    messifier = Messifier(level, random.Random(seed))
    cells = Counter()
    got: dict[str, Counter] = {c: Counter() for c in CLASSES}
    expected: dict[str, Counter] = {c: Counter() for c in CLASSES}
    variance: dict[str, Counter] = {c: Counter() for c in CLASSES}
    spellings = Counter()
    whole_na = 0
    row_cache: dict[tuple[str, int], tuple] = {}
    for i in range(n_rows):
        country = POOL_COUNTRIES[i % len(POOL_COUNTRIES)]
        size = len(pool.country_rows(country))
        index = (i // len(POOL_COUNTRIES)) % min(size, per_country or size)
        clean = pool.pool_row(country, index)
        messy = messifier.apply(list(clean))
        if all(v == "NA" for v in messy) and any(v != "NA" for v in clean):
            whole_na += 1
            continue
        if (country, index) not in row_cache:
            row_cells, row_expected, row_variance = Counter(), {}, {}
            for col, cls, before in zip(columns, classes, clean, strict=True):
                row_cells[cls] += 1
                kinds = _applicable_kinds(before, col)
                total = sum(KIND_WEIGHTS[k] for k in kinds)
                for kind in kinds:
                    p = level * KIND_WEIGHTS[kind] / total
                    row_expected[cls, kind] = row_expected.get((cls, kind), 0.0) + p
                    row_variance[cls, kind] = row_variance.get((cls, kind), 0.0) + p * (1 - p)
            row_cache[country, index] = (row_cells, row_expected, row_variance)
        row_cells, row_expected, row_variance = row_cache[country, index]
        cells.update(row_cells)
        for (cls, kind), p in row_expected.items():
            expected[cls][kind] += p
            variance[cls][kind] += row_variance[cls, kind]
        for col, cls, before, after in zip(columns, classes, clean, messy, strict=True):
            if after != before:
                kind = _cell_kind(after, before, col)
                got[cls][kind] += 1
                if kind == "spelling":
                    spellings[_spelling_family(after, before)] += 1
    return {
        "rows": n_rows,
        "whole_na": whole_na,
        "cells": cells,
        "got": got,
        "expected": expected,
        "variance": variance,
        "spellings": spellings,
    }


@pytest.mark.parametrize(
    ("level", "n_rows"),
    [(messiness.DEFAULT_MESSINESS, 4000), (0.1, 800), (messiness.MAX_MESSINESS, 200)],
)
def test_each_kind_hits_each_column_class_at_the_documented_rate(level, n_rows):
    m = measure_by_class(level, n_rows, seed=17, per_country=100)
    p_row = level * messiness.ROW_NA_FACTOR
    assert _within_sampling_error(m["whole_na"], n_rows * p_row, n_rows * p_row * (1 - p_row))
    for cls in CLASSES:
        assert m["cells"][cls] > 0, cls
        for kind in KIND_WEIGHTS:
            got, want = m["got"][cls][kind], m["expected"][cls][kind]
            assert _within_sampling_error(got, want, m["variance"][cls][kind]), (
                cls,
                kind,
                got,
                want,
            )
        messed = sum(m["got"][cls].values())
        if level == messiness.MAX_MESSINESS:  # every cell of every row that is not all NA
            assert messed == m["cells"][cls], cls
    # the kinds reach the classes the documentation says
    assert m["got"]["cnt"]["lower_case"] > 0
    assert m["got"]["official indices"]["out_of_range"] > 0
    assert m["got"]["w_fstuwt"]["spelling"] + m["got"]["w_fstuwt"]["out_of_range"] > 0
    for cls in CLASSES:
        if cls != "cnt":
            assert m["got"][cls]["lower_case"] == 0
    assert m["got"]["cnt"]["spelling"] == m["got"]["cnt"]["out_of_range"] == 0


def _print_rates(level: float, n_rows: int, seed: int) -> None:
    m = measure_by_class(level, n_rows, seed)
    print(f"\nmessiness {level:g}: {n_rows} rows, {m['whole_na']} whole rows of NA")
    kinds = list(KIND_WEIGHTS)
    print("| class | cells | " + " | ".join(kinds) + " | all |")
    print("|---" * (len(kinds) + 3) + "|")
    for cls in CLASSES:
        n = m["cells"][cls]
        shares = [m["got"][cls][k] / n for k in kinds]
        expected = [m["expected"][cls][k] / n for k in kinds]
        row = [
            f"{100 * s:.3f} ({100 * e:.3f})" if e else "—"
            for s, e in zip(shares, expected, strict=True)
        ]
        print(f"| {cls} | {n:,} | " + " | ".join(row) + f" | {100 * sum(shares):.3f} |")
    total = sum(m["spellings"].values())
    print(
        "spelling families: "
        + ", ".join(f"{f} {c} ({100 * c / total:.1f} %)" for f, c in m["spellings"].most_common())
    )


if __name__ == "__main__":
    n_default = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    _print_rates(messiness.DEFAULT_MESSINESS, n_default, seed=1)
    _print_rates(messiness.MAX_MESSINESS, max(1, n_default // 20), seed=1)
