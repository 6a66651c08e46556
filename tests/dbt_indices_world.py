"""A warehouse database with the real rows loaded and the staging/indices models built.

Shared by tests/test_dbt_indices*.py and tests/test_dbt_staging*.py: each test module
builds its own world (fresh database, private dbt target and log paths).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import psycopg2
import psycopg2.extras

from pulse.dbt import run_dbt

# Everything the indices need, plus the data-quality counts.
MODELS = "+int_student_indices +int_data_quality__nulled_values"


@dataclass
class World:
    url: str
    target: Path
    logs: Path

    def dbt(self, *args: str, check: bool = True):
        return run_dbt(
            list(args), self.url, target_path=self.target, log_path=self.logs, check=check
        )

    def build(self) -> None:
        self.dbt("seed")
        self.dbt("run", "--select", MODELS)

    def query(self, sql: str, params=None) -> list[dict]:
        with (
            psycopg2.connect(self.url) as conn,
            conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur,
        ):
            cur.execute(sql, params)
            rows = cur.fetchall()
        conn.close()
        return rows


def make_world(url: str, tmp: Path) -> World:
    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        # The wide cleaning expressions make JIT compilation cost seconds per query.
        cur.execute("select current_database()")
        cur.execute(f'alter database "{cur.fetchone()[0]}" set jit = off')
    conn.close()
    return World(url=url, target=tmp / "target", logs=tmp / "logs")
