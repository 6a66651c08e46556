"""Submissions as COPY text: a pool row, its country's overrides, messiness, an id.

COPY names no columns: with 1,118 names PostgreSQL spends ~5 ms of CPU per statement
matching them (quadratic), ten times the cost of a small transaction's rows. So rows
carry every column in table order, and `created_at` is the transaction's own `now()`
(read first), exactly what the column default would have given.
"""

from __future__ import annotations

import io
import random

from pulse.sim import messiness, pool
from pulse.sim.messiness import Messifier

COPY_STATEMENT = "copy public.responses from stdin"


def submission(country: str, rng: random.Random, messifier: Messifier) -> list[str]:
    """One submission's answer cells (COPY-escaped), drawn at random from the country's pool."""
    candidates = pool.country_rows(country)
    row = list(candidates[rng.randrange(len(candidates))])
    for i, value in pool.overrides(country, row):
        row[i] = value
    return messifier.apply(row)


def warm_up() -> None:
    """Load the pool and the column tables before timing starts."""
    pool.escaped_rows()
    pool._everything()
    messiness.columns()


def copy_text(
    country: str, ids: list[int], rng: random.Random, messifier: Messifier
) -> list[tuple[int, str]]:
    """(id, answer cells as one COPY text line without its end) for each id."""
    return [(row_id, "\t".join(submission(country, rng, messifier))) for row_id in ids]


def copy_rows(cur, batch: list[tuple[int, str]]) -> None:
    """COPY a batch in the current transaction, created_at = the transaction's now()."""
    cur.execute("select now()::text")
    (now,) = cur.fetchone()
    text = "".join(f"{row_id}\t{now}\t{cells}\n" for row_id, cells in batch)
    cur.copy_expert(COPY_STATEMENT, io.StringIO(text))
