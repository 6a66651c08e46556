"""The application databases' schema: one `public.responses` per country database."""

from __future__ import annotations

from pisa_pulse.core import codebook


def responses_ddl() -> str:
    names = codebook.variables()
    columns = ",\n    ".join(f'"{name}" text' for name in names)
    # No planner statistics for the ~1,120 answer columns: nothing filters or joins on them,
    # and autovacuum's ANALYZE of 1,120 text columns, repeated as each stand-in database
    # grows, took 0.6-0.7 of a core of this 2-core machine at 1,000 submissions/s (measured
    # while benchmarking freshness). GEI's real databases are tuned on their own servers.
    no_stats = ",\n    ".join(f'alter column "{name}" set statistics 0' for name in names)
    return f"""
create table if not exists public.responses (
    id bigint primary key,
    created_at timestamptz not null default now(),
    {columns}
);
create index if not exists responses_created_at_idx on public.responses (created_at);
alter table public.responses
    {no_stats};
"""


def database_name(country: str) -> str:
    """Application databases are named by the lower-case country code."""
    return country.lower()
