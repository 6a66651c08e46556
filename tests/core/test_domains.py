"""Every number has a domain (docs/domains.md), the real rows lie inside it, and every
numeric spelling is read by the documented rule.

The oracles: the OECD's own values in the 1,269 real rows (a domain that nulls one of them
is wrong), and the spelling table of docs/domains.md written out by hand below.
"""

from __future__ import annotations

import csv
import gzip
import re
from decimal import Decimal

import pytest

from pisa_pulse.loader.raw_fixture import POOL_CSV, REPO_ROOT, pool_rows
from tests.support.marts_world import MartsWorld

CODEBOOK = REPO_ROOT / "seeds" / "codebook_items.csv"
# A five-digit SPSS missing code (99998, 99999) in a one-digit field: nulled, correctly.
KNOWN_WIDE_MISSING = {"ST189Q01HA": {"99998.0", "99999.0"}}


def _items() -> dict[str, dict]:
    with CODEBOOK.open() as fh:
        return {r["pisa_variable"]: r for r in csv.DictReader(fh)}


def test_every_numeric_variable_has_a_domain_with_a_source():
    for var, item in _items().items():
        if item["kind"] == "text":
            continue
        assert item["valid_min"] != "" and item["valid_max"] != "", var
        assert float(item["valid_min"]) < float(item["valid_max"]), var
        assert item["domain_source"] not in ("", "none"), var


def test_the_seed_is_what_the_generator_writes(tmp_path):
    from pisa_pulse.indices import codebook_seed

    out = tmp_path / "codebook_items.csv"
    codebook_seed.write(out)
    assert out.read_text() == CODEBOOK.read_text()


def test_every_real_value_lies_inside_its_domain():
    items = _items()
    with gzip.open(POOL_CSV, "rt", newline="") as fh:
        rows = list(csv.DictReader(fh))
    outside = []
    for var, item in items.items():
        if item["kind"] == "text" or var not in rows[0]:
            continue
        lo, hi = Decimal(item["valid_min"]), Decimal(item["valid_max"])
        missing = {Decimal(m) for m in item["missing_codes"].split("|") if m}
        for row in rows:
            text = row[var]
            if text in ("", "NA") or text in KNOWN_WIDE_MISSING.get(var, ()):
                continue
            value = Decimal(text)
            if value not in missing and not lo <= value <= hi:
                outside.append((var, text))
    assert outside == []


# (cell as stored, the value staging keeps or None, the reason or None)
SPELLINGS = [
    ("120", 120, None),
    (" 120 ", 120, None),
    ("120.0", 120, None),
    ("+120", 120, None),
    ("120.", 120, None),
    ("-0", 0, None),
    ("NaN", None, "malformed"),
    ("Infinity", None, "malformed"),
    ("-Infinity", None, "malformed"),
    ("1e3", None, "malformed"),
    ("1,200", None, "malformed"),
    ("1 200", None, "malformed"),
    ("12,5", None, "malformed"),
    ("\uff11\uff12\uff10", None, "malformed"),  # full-width 120
    ("\u0661\u0662\u0660", None, "malformed"),  # Arabic-Indic 120
    ("1" * 40, None, "malformed"),
    ("1" * 140_000, None, "malformed"),
    ("120.5", None, "malformed"),  # a fraction for an integer item
    ("99999999", None, "missing_code"),
    ("3001", None, "out_of_range"),
    ("-5", None, "out_of_range"),
    ("na", None, "na"),
    ("  ", None, "blank"),
]


@pytest.fixture(scope="module")
def spelled(pg_server, tmp_path_factory):
    world = MartsWorld.create(pg_server, tmp_path_factory.mktemp("spellings"), "spell")
    base = pool_rows()[0]
    rows = [dict(base, TMINS=cell, _id=i + 1) for i, (cell, _, _) in enumerate(SPELLINGS)]
    rows.append(dict(base, TMINS="12345", OCOD1="12345", _id=len(SPELLINGS) + 1))
    world.insert(rows, verbatim=True)
    for args in (
        ("seed", "--select", "codebook_items"),
        ("run", "--select", "stg_pisa__responses", "stg_pisa__null_reasons"),
    ):
        result = world.dbt(*args)
        assert result.returncode == 0, result.stdout[-3000:]
    return world


def test_every_spelling_is_read_by_the_documented_rule(spelled):
    kept = {
        r["id"]: r["tmins"]
        for r in spelled.query("select id, tmins from staging.stg_pisa__responses")
    }
    reasons = {
        r["id"]: r["reason"]
        for r in spelled.query(
            "select id, reason from staging.stg_pisa__null_reasons where column_name = 'tmins'"
        )
    }
    for i, (cell, value, reason) in enumerate(SPELLINGS, start=1):
        label = re.sub(r"(.)\1{10,}", r"\1…", cell)
        assert kept[i] == value, label
        assert reasons.get(i) == reason, label


def test_a_code_longer_than_its_field_is_not_cut_to_a_valid_one(spelled):
    row = spelled.query(
        "select ocod1 from staging.stg_pisa__responses where id = %s", (len(SPELLINGS) + 1,)
    )[0]
    assert row["ocod1"] is None  # not '1234'
