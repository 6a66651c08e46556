"""The warehouse raw layer for dbt tests that do not need the loader.

`create_raw_schema(conn)` creates `raw.responses`, `raw.load_seq`, `raw.responses_deleted`
and `raw.loader_sources` as docs/contracts.md describes them, and `insert_pool_rows(conn)`
loads the real PISA 2018 rows of data/pisa2018/ into `raw.responses`, normalised as the
simulator stores them (`1.0` → `1`, empty → `NA`).
"""

from __future__ import annotations

import csv
import gzip
import re
from functools import cache
from pathlib import Path

import yaml
from psycopg2.extras import execute_values

from pisa_pulse.core.config import REPO_ROOT
from pisa_pulse.loader.columns import LOADER_MANAGED, SOURCES_YML
from pisa_pulse.loader.schema import RAW_DDL

POOL_CSV = REPO_ROOT / "data" / "pisa2018" / "students_fra_ita_mex.csv.gz"
DATA_DIR = REPO_ROOT / "data" / "pisa2018"
MISSING_CODES_CSV = DATA_DIR / "students_fra_ita_mex_with_missing_codes.csv.gz"

_WHOLE_FLOAT = re.compile(r"^(-?\d+)\.0+$")


@cache
def declared_columns() -> list[tuple[str, str]]:
    """(raw column, PISA variable) for every TEXT column declared on source pisa.responses."""
    spec = yaml.safe_load(SOURCES_YML.read_text())
    source = next(s for s in spec["sources"] if s["name"] == "pisa")
    table = next(t for t in source["tables"] if t["name"] == "responses")
    out = []
    for col in table["columns"]:
        if col["name"] in LOADER_MANAGED:
            continue
        meta = col.get("meta") or {}
        out.append((col["name"], meta.get("pisa_variable", col["name"].upper())))
    return out


def create_raw_schema(conn, columns: list[str] | None = None) -> None:
    """Create the raw layer with the loader's own DDL, plus the declared TEXT columns. Commits."""
    columns = columns or [name for name, _ in declared_columns()]
    with conn.cursor() as cur:
        cur.execute(RAW_DDL)
        for column in columns:
            cur.execute(f'alter table raw.responses add column if not exists "{column}" text')
    conn.commit()


def normalise(value: str | None) -> str:
    """A CSV value as the simulator stores it: empty → 'NA', '3.0' → '3'."""
    if value is None or value == "":
        return "NA"
    match = _WHOLE_FLOAT.match(value)
    return match.group(1) if match else value


@cache
def _read_pool(path: Path) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
    with gzip.open(path, "rt", newline="") as fh:
        reader = csv.reader(fh)
        header = tuple(next(reader))
        return header, tuple(tuple(row) for row in reader)


def pool_rows(path: Path = POOL_CSV) -> list[dict[str, str]]:
    """The real rows as dicts keyed by PISA variable (upper-case), values as in the CSV."""
    header, rows = _read_pool(path)
    return [dict(zip(header, row, strict=True)) for row in rows]


def insert_pool_rows(
    conn,
    rows: list[dict[str, str]] | None = None,
    *,
    load_seq_start: int | None = None,
    drop_official: tuple[str, ...] | list[str] = (),
    verbatim: bool = False,
) -> int:
    """Insert real rows (dicts keyed by PISA variable) into raw.responses. Commits.

    `cnt` = the row's CNT, `id` = its row number + 1 (or the row's own `_id` key when
    given). `load_seq_start` numbers rows explicitly from that value (else the sequence).
    `drop_official` names raw columns (e.g. "belong") to store as 'NA'. With `verbatim`,
    values are stored exactly as given (None → SQL NULL; raw `cnt` from `_cnt` if present,
    else `CNT`): for messy-input tests.
    Returns the number of rows inserted.
    """
    rows = pool_rows() if rows is None else rows
    columns = declared_columns()
    dropped = {c.lower() for c in drop_official}
    names = ["cnt", "id", "created_at"] + [c for c, _ in columns]
    if load_seq_start is not None:
        names.append("_load_seq")
    template = "(" + ", ".join(["%s", "%s", "now()"] + ["%s"] * (len(names) - 3)) + ")"
    sql = "insert into raw.responses (" + ", ".join(f'"{n}"' for n in names) + ") values %s"
    values = []
    for i, row in enumerate(rows):
        clean = (lambda v: v) if verbatim else normalise
        cnt = row.get("_cnt", row["CNT"]) if verbatim else row["CNT"].strip().upper()
        rec = [cnt, int(row.get("_id", i + 1))]
        rec += ["NA" if c in dropped else clean(row.get(var)) for c, var in columns]
        if load_seq_start is not None:
            rec.append(load_seq_start + i)
        values.append(rec)
    with conn.cursor() as cur:
        execute_values(cur, sql, values, template=template, page_size=500)
        if load_seq_start is not None and values:
            # Keep the sequence ahead of explicit numbers so later default inserts stay unique.
            cur.execute(
                "select setval('raw.load_seq',"
                " greatest(%s, (select last_value from raw.load_seq)))",
                (load_seq_start + len(values) - 1,),
            )
    conn.commit()
    return len(values)
