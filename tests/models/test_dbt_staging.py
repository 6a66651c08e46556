"""Staging on messy input: cleaning gives the same values and indices, and the data-quality
model counts every value set to NULL by reason, column and country.

Each real row is loaded twice: clean (ids 1…1269) and messy (MESSY_OFFSET + id), the messy
copy taken from the file with SPSS missing codes and then spoiled on purpose: spaces around
values, `3.0` for `3`, lower-case country codes, and, in place of missing answers, blanks,
SQL NULLs, `na`, out-of-range numbers and junk text.
"""

from __future__ import annotations

import csv
import random
import uuid
from collections import Counter

import psycopg2
import pytest

from pisa_pulse.core.config import REPO_ROOT
from pisa_pulse.loader.raw_fixture import (
    MISSING_CODES_CSV,
    create_raw_schema,
    declared_columns,
    insert_pool_rows,
    normalise,
    pool_rows,
)
from tests.support.databases import create_database
from tests.support.dbt_indices_world import make_world

MESSY_OFFSET = 500_000
LOADER_KEYS = {"id", "created_at", "_loaded_at", "_load_seq"}


def _items() -> dict[str, dict]:
    with (REPO_ROOT / "seeds" / "codebook_items.csv").open() as fh:
        return {r["column_name"]: r for r in csv.DictReader(fh)}


ITEMS = _items()


def _missing_codes(var: str) -> set[str]:
    return set(filter(None, ITEMS[var.lower()]["missing_codes"].split("|")))


def _reason_of_file_value(clean: str, value: str, var: str) -> str | None:
    """Why the (normalised) file value is nulled, known from where it came from."""
    if value == "":
        return "na"
    if clean == "" or normalise(value) in _missing_codes(var):
        return "missing_code"
    return None


def _out_of_range(item: dict) -> str | None:
    if item["kind"] == "text" or not item["valid_max"]:
        return None
    lo, hi = int(float(item["valid_min"] or 0)), int(float(item["valid_max"]))
    codes = set(filter(None, item["missing_codes"].split("|")))
    return next(str(v) for v in (lo - 1, hi + 1, hi + 2, hi + 3, hi + 4) if str(v) not in codes)


def _spoil(rng, rows_codes, rows_clean):
    """Messy copies of the rows, and the expected (cnt, column, reason) counts of NULLs."""
    expected: Counter = Counter()
    messy = []
    for i, (codes_row, clean_row) in enumerate(zip(rows_codes, rows_clean, strict=True)):
        cnt = clean_row["CNT"]
        out = {"_id": MESSY_OFFSET + i + 1, "CNT": clean_row["CNT"]}
        out["_cnt"] = cnt.lower() if i % 10 == 0 else cnt
        for column, var in declared_columns():
            item = ITEMS[var.lower()]
            value = normalise(codes_row[var]) if codes_row[var] != "" else "NA"
            reason = _reason_of_file_value(clean_row[var], codes_row[var], var)
            roll = rng.random()
            if var == "CNT":
                value = f" {value.lower()} "
            elif reason is None and roll < 0.05:
                value = f"  {value} "
            elif reason is None and roll < 0.10 and item["kind"] == "integer":
                value = f"{value}.0"
            elif reason == "na" and roll < 0.05:
                value, reason = "   ", "blank"
            elif reason == "na" and roll < 0.08:
                value, reason = None, "sql_null"
            elif reason == "na" and roll < 0.11:
                value = "na"
            elif reason == "na" and roll < 0.14 and _out_of_range(item):
                value, reason = _out_of_range(item), "out_of_range"
            elif reason == "na" and roll < 0.16 and item["kind"] != "text":
                value, reason = "n/a?", "malformed"
            out[var] = value
            if reason:
                expected[(cnt, column, reason)] += 1
        messy.append(out)
    return messy, expected


def _clean_expected(rows_clean) -> Counter:
    expected: Counter = Counter()
    for row in rows_clean:
        for column, var in declared_columns():
            reason = _reason_of_file_value(row[var], row[var], var)
            if reason:
                expected[(row["CNT"], column, reason)] += 1
    return expected


@pytest.fixture(scope="module")
def world(pg_server, tmp_path_factory):
    url = create_database(pg_server, f"stg_{uuid.uuid4().hex[:8]}")
    w = make_world(url, tmp_path_factory.mktemp("dbt_staging"))
    rows_clean = pool_rows()
    messy, expected_messy = _spoil(random.Random(2018), pool_rows(MISSING_CODES_CSV), rows_clean)
    conn = psycopg2.connect(url)
    create_raw_schema(conn)
    insert_pool_rows(conn, [dict(r, _id=i + 1) for i, r in enumerate(rows_clean)])
    conn.close()
    w.build()
    # The messy copies arrive in a second batch: the data-quality counts must add up.
    conn = psycopg2.connect(url)
    insert_pool_rows(conn, messy, verbatim=True)
    conn.close()
    w.dbt("run", "--select", "int_data_quality__nulled_values", "int_student_indices")
    w.expected_clean = _clean_expected(rows_clean)  # type: ignore[attr-defined]
    w.expected = w.expected_clean + expected_messy  # type: ignore[attr-defined]
    return w


def _pairs(world, relation: str) -> list[tuple[dict, dict]]:
    rows = {r["id"]: r for r in world.query(f"select * from {relation}")}
    return [(rows[i], rows[i + MESSY_OFFSET]) for i in range(1, 1270)]


def _strip(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in LOADER_KEYS}


def test_messy_input_was_really_messy(world):
    raw = world.query(
        f"""select count(*) filter (where cnt <> upper(cnt)) as lower_cnt,
                   count(*) filter (where st034q01ta like '% %') as spaced,
                   count(*) filter (where st005q01ta like '%.0') as dotted
            from raw.responses where id > {MESSY_OFFSET}"""
    )[0]
    assert raw["lower_cnt"] > 100 and raw["spaced"] > 10 and raw["dotted"] > 10


def test_staging_values_identical_after_cleaning(world):
    pairs = _pairs(world, "staging.stg_pisa__responses")
    diffs = [(a["id"], k) for a, b in pairs for k in _strip(a) if a[k] != b[k]]
    assert diffs == []
    assert {a["cnt"] for a, _ in pairs} == {"FRA", "ITA", "MEX"}


def test_indices_identical_on_messy_input(world):
    pairs = _pairs(world, "intermediate.int_student_indices")
    diffs = [(a["id"], k) for a, b in pairs for k in _strip(a) if a[k] != b[k]]
    assert diffs == []
    # and they are not trivially empty
    assert sum(a["tmins_computed"] is not None for a, _ in pairs) > 700


def test_data_quality_counts_every_nulled_value_by_reason(world):
    rows = world.query(
        "select cnt, column_name, reason, values_nulled"
        " from intermediate.int_data_quality__nulled_values"
    )
    actual = Counter({(r["cnt"], r["column_name"], r["reason"]): r["values_nulled"] for r in rows})
    assert {k[2] for k in actual} == {
        "na",
        "blank",
        "sql_null",
        "missing_code",
        "out_of_range",
        "malformed",
    }
    assert actual == world.expected


def test_data_quality_full_refresh_equals_incremental(world):
    before = world.query(
        "select * from intermediate.int_data_quality__nulled_values order by 1, 2, 3"
    )
    world.dbt("run", "--select", "int_data_quality__nulled_values", "--full-refresh")
    after = world.query(
        "select * from intermediate.int_data_quality__nulled_values order by 1, 2, 3"
    )
    assert [dict(r) for r in before] == [dict(r) for r in after]
