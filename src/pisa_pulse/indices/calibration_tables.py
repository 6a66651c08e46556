"""The calibration tables, for Python that needs them before any dbt run.

`calibration.homepos_params` (written by `pulse calibrate homepos`) and
`calibration.rescored_countries` (the rescore queue) have one written DDL: the macro
`homepos_tables_ddl()` in macros/homepos.sql, which dbt's on-run-start hook runs. A job that
may come first (a calibration or a rescore on a fresh warehouse, `pulse check`'s scratch
warehouse before its build) runs the same macro by `dbt run-operation homepos_create_tables`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import psycopg2

from pisa_pulse.core.dbt import run_dbt

TABLES = (
    "calibration.homepos_params",
    "calibration.rescored_countries",
    "calibration.rescore_pending",
)


def calibration_tables_exist(warehouse_url: str) -> bool:
    conn = psycopg2.connect(warehouse_url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "select bool_and(to_regclass(t) is not null) from unnest(%s::text[]) as t",
                (list(TABLES),),
            )
            return bool(cur.fetchone()[0])
    finally:
        conn.close()


def ensure_calibration_tables(warehouse_url: str) -> bool:
    """Create the calibration tables unless they exist (dbt ran); True if it ran dbt."""
    if calibration_tables_exist(warehouse_url):
        return False
    with tempfile.TemporaryDirectory(prefix="pulse-dbt-") as tmp:
        # A private target: dbt writes its manifest and partial-parse file there.
        run_dbt(
            ["run-operation", "homepos_create_tables"],
            warehouse_url,
            target_path=Path(tmp) / "target",
            log_path=Path(tmp) / "logs",
        )
    return True
