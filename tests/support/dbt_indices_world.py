"""A warehouse database with the real rows loaded and the staging/indices models built.

Shared by tests/test_dbt_indices*.py and tests/test_dbt_staging*.py: each test module
builds its own world (fresh database, private dbt target and log paths).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import psycopg2.extras

from pisa_pulse.core.dbt import run_dbt
from pisa_pulse.indices.params import LEARNED_TABLES, learned_csv

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

    def build(self, *, learn_from_rows: bool = False) -> None:
        """Seed and build. With `learn_from_rows`, the learned seeds are first replaced by
        what this warehouse's own rows teach (`pulse params learn` followed by `dbt seed`)."""
        self.dbt("seed")
        if learn_from_rows:
            self.learn_from_rows()
        self.dbt("run", "--select", MODELS)

    def learn_from_rows(self) -> None:
        self.dbt("run", "--select", "+tag:learning")
        conn = psycopg2.connect(self.url)
        with conn, conn.cursor() as cur:
            for table in LEARNED_TABLES:
                # what `dbt seed` would load from the CSV that `pulse params learn` writes
                cur.execute(f"truncate reference.{table.seed}")
                cur.copy_expert(
                    f"copy reference.{table.seed} from stdin with (format csv, header)",
                    io.StringIO(learned_csv(self.url, table)),
                )
        conn.close()

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
