"""The application databases' schema: one `public.responses` per country database."""

from __future__ import annotations

from pulse import codebook


def responses_ddl() -> str:
    columns = ",\n    ".join(f'"{name}" text' for name in codebook.variables())
    return f"""
create table if not exists public.responses (
    id bigint primary key,
    created_at timestamptz not null default now(),
    {columns}
);
create index if not exists responses_created_at_idx on public.responses (created_at);
"""


def database_name(country: str) -> str:
    """Application databases are named by the lower-case country code."""
    return country.lower()
