"""Messiness: the share of messy cells is as configured, and every kind shows up."""

from __future__ import annotations

import re

import pytest

from pulse import codebook
from pulse.sim import api
from sim_world import csv_rows, fetch_dicts


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
