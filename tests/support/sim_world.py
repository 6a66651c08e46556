"""Helpers for the simulator tests: a private set of application databases, the clean pool."""

from __future__ import annotations

import csv
import gzip
import re

import psycopg2

from pisa_pulse.core import codebook
from tests.support.databases import query

POOL_CSV = codebook.DATA_DIR / "students_fra_ita_mex.csv.gz"


def normalise_csv_value(value: str) -> str:
    """The documented normalisation (docs/simulator.md), written independently of the pool."""
    if value == "":
        return "NA"
    m = re.fullmatch(r"(-?\d+)\.0", value)
    if m:
        return "0" if m.group(1) == "-0" else m.group(1)
    return value


def csv_rows(country: str) -> dict[str, dict[str, str]]:
    """The CSV rows of one country, normalised, keyed by CNTSTUID, lower-case column names."""
    out = {}
    with gzip.open(POOL_CSV, "rt", newline="") as f:
        for raw in csv.DictReader(f):
            if raw["CNT"] != country:
                continue
            row = {k.lower(): normalise_csv_value(v) for k, v in raw.items()}
            row.pop("test")
            row.pop("cntry")
            out[row["cntstuid"]] = row
    return out


def fetch(settings, country: str, sql: str, params=()) -> list[tuple]:
    return query(settings.source_url(country), sql, params)


def fetch_dicts(settings, country: str) -> list[dict]:
    conn = psycopg2.connect(settings.source_url(country))
    try:
        with conn.cursor() as cur:
            cur.execute("select * from public.responses")
            names = [d.name for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    finally:
        conn.close()
