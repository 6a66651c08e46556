"""The simulator's programmatic API (used by `pulse sim`, the loader's tests and the supervisor).

Every function takes a `pisa_pulse.core.config.Settings`; countries are upper-case CNT codes
(default: `settings.sources`, else the 82 codes of the codebook); database names
always come from `settings.source_database(cnt)`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

from pisa_pulse.sim import control, rows, schema, world
from pisa_pulse.sim import countries as cnts
from pisa_pulse.sim import pool as sim_pool
from pisa_pulse.sim.control import IdAllocator, connect
from pisa_pulse.sim.history import History
from pisa_pulse.sim.messiness import Messifier
from pisa_pulse.sim.stream import Stream

__all__ = [
    "setup_databases",
    "drop_databases",
    "insert_rows",
    "backfill",
    "empty",
    "count_rows",
    "existing_countries",
    "Stream",
]

BACKFILL_CHUNK = 2000  # rows per COPY statement and commit


def _setup_one(settings, country: str) -> str:
    name = settings.source_database(country)
    control.create_database(settings, name)
    conn = connect(settings.source_url(country), autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(schema.responses_ddl())
    finally:
        conn.close()
    return name


def setup_databases(settings, countries: Iterable[str] | None = None) -> list[str]:
    """Create each country's database and `public.responses` if missing; returns the names."""
    codes = cnts.resolve(countries, settings)
    control.ensure(settings)
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda c: _setup_one(settings, c), codes))


def drop_databases(settings, countries: Iterable[str] | None = None) -> None:
    """Drop country databases; the control database too once no country database is left."""
    codes = cnts.resolve(countries, settings)
    for country in codes:
        control.drop_database(settings, settings.source_database(country))
    if not existing_countries(settings, cnts.resolve(None)):  # ids may restart: nothing to clash
        control.drop_database(settings, settings.source_database(control.CONTROL_NAME))
        control.forget(settings)


def existing_countries(settings, countries: Iterable[str] | None = None) -> list[str]:
    """The countries (of those asked) whose application database exists."""
    codes = cnts.resolve(countries, settings)
    conn = connect(settings.admin_url, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("select datname from pg_database")
            present = {name for (name,) in cur.fetchall()}
    finally:
        conn.close()
    return [c for c in codes if settings.source_database(c) in present]


def _rng(seed) -> random.Random:
    return random.Random(seed)


def insert_rows(
    settings, country: str, n: int, *, seed: int | None = None, messiness: float | None = None
) -> list[int]:
    """Insert n submissions into one country's database in one transaction; returns their ids."""
    (country,) = cnts.resolve([country])
    rng = _rng(seed)
    ids = IdAllocator(settings, rng)
    try:
        new_ids = ids.take(n)
    finally:
        ids.close()
    batch = rows.copy_text(country, new_ids, rng, Messifier(messiness, rng))
    conn = connect(settings.source_url(country))
    try:
        with conn, conn.cursor() as cur:
            rows.copy_rows(cur, batch)
    finally:
        conn.close()
    return new_ids


def backfill(
    settings,
    n: int,
    *,
    countries: Iterable[str] | None = None,
    seed: int | None = 0,
    messiness: float | None = None,
    even: bool = False,
    progress: Callable[[int, int], None] | None = None,
    workers: int = 2,
    hours: float | None = None,
    history: History | None = None,
) -> int:
    """COPY n submissions, spread over countries by sample size; returns the rows inserted.

    Two workers by default: one builds COPY text while the server parses the other's.
    `hours=N` backdates `created_at` over the N hours before now with each country's
    daily rhythm (src/pisa_pulse/sim/history.py); `history` gives that window explicitly. Without
    either, every row is created now.
    """
    if history is None and hours is not None:
        history = History(hours)
    codes = cnts.resolve(countries, settings)
    plan = {c: k for c, k in cnts.split(n, codes, even).items() if k}
    ids = IdAllocator(settings, _rng(seed))
    done = 0

    def fill(country: str, count: int, worker_seed: int) -> int:
        nonlocal done
        rng = _rng(worker_seed)
        messifier = Messifier(messiness, rng)
        # systematic draws of the country's weights: its means without sampling noise
        picks = world.systematic_draws(country, count, len(sim_pool.country_rows(country)), rng)
        conn = connect(settings.source_url(country))
        try:
            left = count
            while left:
                k = min(left, BACKFILL_CHUNK)
                chunk, picks = picks[:k], picks[k:]
                batch = rows.copy_text(country, ids.take(k), rng, messifier, chunk)
                times = history.draw(country, k, rng) if history else None
                with conn, conn.cursor() as cur:
                    rows.copy_rows(cur, batch, times)
                left -= k
                done += k  # += on an int is atomic enough under the GIL for a progress figure
                if progress:
                    progress(done, n)
        finally:
            conn.close()
        return count

    base = random.Random(seed).randrange(2**31)
    try:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            futures = [pool.submit(fill, c, k, base + i) for i, (c, k) in enumerate(plan.items())]
            return sum(f.result() for f in futures)
    finally:
        ids.close()


def empty(settings, country: str | None = None) -> list[str]:
    """Remove every submission of one country (or of every existing country database)."""
    codes = existing_countries(settings, None if country is None else [country])
    for code in codes:
        conn = connect(settings.source_url(code))
        try:
            with conn, conn.cursor() as cur:
                # delete, not truncate: truncate's exclusive lock would queue behind a
                # stream's held transactions and block the writers that must commit them
                cur.execute("delete from public.responses")
        finally:
            conn.close()
    return codes


def count_rows(settings, countries: Iterable[str] | None = None) -> dict[str, int]:
    """Rows per country database (existing databases only)."""
    out = {}
    for code in existing_countries(settings, countries):
        conn = connect(settings.source_url(code), autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute("select count(*) from public.responses")
                out[code] = cur.fetchone()[0]
        finally:
            conn.close()
    return out
