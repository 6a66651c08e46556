"""Submissions as COPY text: a pool row, its country's overrides, messiness, an id.

COPY names no columns: with 1,118 names PostgreSQL spends ~5 ms of CPU per statement
matching them (quadratic), ten times the cost of a small transaction's rows. So rows
carry every column in table order, and `created_at` is the transaction's own `now()`
(read first), exactly what the column default would have given.
"""

from __future__ import annotations

import bisect
import io
import random

from pisa_pulse.sim import messiness, pool, world
from pisa_pulse.sim.messiness import Messifier

COPY_STATEMENT = "copy public.responses from stdin"


def submission(
    country: str, rng: random.Random, messifier: Messifier, index: int | None = None
) -> list[str]:
    """One submission's answer cells (COPY-escaped), drawn from the country's pool.

    Drawn with the country's tilted weights (src/pisa_pulse/sim/world.py) when it has published
    means, else uniformly; `index` picks the pool row instead (a backfill's systematic draws).
    """
    candidates = pool.country_rows(country)
    cum = world.cum_weights(country)
    if index is None and cum is None:
        index = rng.randrange(len(candidates))
    elif (
        index is None
    ):  # bisect on the cumulative weights: what random.choices does, without its list
        index = min(bisect.bisect(cum, rng.random() * cum[-1]), len(candidates) - 1)
    row = list(candidates[index])
    for i, value in pool.overrides(country, row):
        row[i] = value
    return messifier.apply(row)


def warm_up() -> None:
    """Load the pool and the column tables before timing starts."""
    pool.escaped_rows()
    pool._everything()
    messiness.columns()
    for country in world.published_means():
        world.cum_weights(country)


def copy_text(
    country: str,
    ids: list[int],
    rng: random.Random,
    messifier: Messifier,
    indices: list[int] | None = None,
) -> list[tuple[int, str]]:
    """(id, answer cells as one COPY text line without its end) for each id.

    `indices`: the pool row of each id (default: drawn at random).
    """
    picks = indices if indices is not None else [None] * len(ids)
    return [
        (row_id, "\t".join(submission(country, rng, messifier, index)))
        for row_id, index in zip(ids, picks, strict=True)
    ]


def copy_rows(cur, batch: list[tuple[int, str]], created_at: list[str] | None = None) -> None:
    """COPY a batch in the current transaction, created_at = the transaction's now().

    `created_at` (one timestamptz text per row) backdates the rows instead (a backfill's
    history, src/pisa_pulse/sim/history.py).
    """
    if created_at is None:
        cur.execute("select now()::text")
        (now,) = cur.fetchone()
        text = "".join(f"{row_id}\t{now}\t{cells}\n" for row_id, cells in batch)
    else:
        text = "".join(
            f"{row_id}\t{at}\t{cells}\n"
            for (row_id, cells), at in zip(batch, created_at, strict=True)
        )
    cur.copy_expert(COPY_STATEMENT, io.StringIO(text))
