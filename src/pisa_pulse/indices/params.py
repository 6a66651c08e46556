"""`pulse params learn`: write what the warehouse's rows teach into the learned seeds.

Four parameter tables are learned from rows carrying official values (docs/indices.md):
PARED years per country, ISEI per ISCO-08 code, a country's BELONG per response pattern and
the ESCS imputation regressions. They are learned *offline* and shipped as seeds
(`seeds/learned_*.csv`), fixed for the cycle, the way the OECD fixes its parameters after
calibration: were they relearned from the stream, every new row would change how earlier
rows should have been scored, and the real-time numbers could never equal a rebuild.

The shipped seeds were learned from the 1,269 real rows in data/pisa2018/
(tests/indices/test_params_learn.py checks they still are). To learn from a warehouse's own rows:
`pulse params learn --out seeds/`, review the diff, then `dbt seed` and
`dbt run --full-refresh` (every row rescored with the new parameters).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import psycopg2

from pisa_pulse.core import config
from pisa_pulse.core.dbt import run_dbt


@dataclass(frozen=True)
class LearnedTable:
    seed: str  # seeds/<seed>.csv
    model: str  # the dbt view that learns it (models/intermediate/learning/)
    order_by: str  # a stable row order, so that a re-learn diffs cleanly


LEARNED_TABLES = (
    LearnedTable("learned_pared_years", "int_learned_pared_years", "cnt, hisced"),
    LearnedTable("learned_isei_map", "int_learned_isei_map", "isco08"),
    LearnedTable(
        "learned_belong_country_patterns", "int_learned_belong_country_patterns", "cnt, pattern_key"
    ),
    LearnedTable(
        "learned_escs_imputation_params", "int_learned_escs_imputation_params", "cnt, component"
    ),
)

SEEDS_DIR = config.REPO_ROOT / "seeds"


def learned_csv(url: str, table: LearnedTable) -> str:
    """The learning view's rows as seed CSV text (header, then rows in a stable order)."""
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            # Shortest exact text for floats: the seed reloads to the same double.
            cur.execute("set extra_float_digits = 1")
            out = io.StringIO()
            cur.copy_expert(
                f"copy (select * from intermediate.{table.model} order by {table.order_by})"
                " to stdout with (format csv, header)",
                out,
            )
        return out.getvalue()
    finally:
        conn.close()


def learn(url: str, out_dir: Path = SEEDS_DIR, *, build_views: bool = True, progress=print) -> dict:
    """Learn every table from the warehouse at `url` into `out_dir`; {seed: rows written}."""
    if build_views:
        progress("building the learning views (dbt run --selector learning) …")
        run_dbt(["run", "--selector", "learning"], url)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for table in LEARNED_TABLES:
        text = learned_csv(url, table)
        (out_dir / f"{table.seed}.csv").write_text(text)
        written[table.seed] = text.count("\n") - 1
        progress(f"{table.seed}: {written[table.seed]} rows → {out_dir / (table.seed + '.csv')}")
    return written
