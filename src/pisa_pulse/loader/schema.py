"""The warehouse raw layer the loader owns (docs/contracts.md, "Warehouse raw layer")."""

from __future__ import annotations

from pisa_pulse.loader.columns import Column

RAW_DDL = """
create schema if not exists raw;
create sequence if not exists raw.load_seq;
create table if not exists raw.responses (
    cnt text not null,
    id bigint not null,
    created_at timestamptz,
    _loaded_at timestamptz not null default now(),
    _load_seq bigint not null default nextval('raw.load_seq'),
    primary key (cnt, id)
);
create index if not exists responses_load_seq_idx on raw.responses (_load_seq);
create table if not exists raw.responses_deleted (
    cnt text not null,
    id bigint not null,
    _load_seq bigint not null default nextval('raw.load_seq'),
    _deleted_at timestamptz not null default now()
);
create index if not exists responses_deleted_load_seq_idx on raw.responses_deleted (_load_seq);
create table if not exists raw.loader_sources (
    cnt text primary key,
    status text not null default 'ok',
    rows_loaded bigint not null default 0,
    rows_per_s double precision,
    newest_created_at timestamptz,
    lag_ms bigint,
    last_polled_at timestamptz,
    last_error text,
    last_error_at timestamptz
);
-- The loader's own watermark, committed with the rows it covers.
alter table raw.loader_sources
    add column if not exists horizon_xid bigint,
    add column if not exists read_at timestamptz,
    add column if not exists source_db_oid bigint,
    add column if not exists backfill_after_id bigint,
    add column if not exists loaded_columns text[],
    add column if not exists source_rows bigint,
    add column if not exists rows_deleted bigint not null default 0,
    add column if not exists rows_quarantined bigint not null default 0,
    add column if not exists last_reconciled_at timestamptz;
create table if not exists raw.quarantine (
    cnt text not null,
    id bigint not null,
    reason text not null,
    column_name text,
    row_text text,
    first_seen_at timestamptz not null default now(),
    last_seen_at timestamptz not null default now(),
    primary key (cnt, id)
);
"""


def existing_columns(cur) -> list[str]:
    cur.execute(
        """
        select column_name from information_schema.columns
        where table_schema = 'raw' and table_name = 'responses'
        order by ordinal_position
        """
    )
    return [r[0] for r in cur.fetchall()]


def ensure_schema(conn, columns: list[Column]) -> list[str]:
    """Create the raw layer and add any declared column raw.responses lacks. Commits.

    Returns the names of the columns added (existing rows hold NULL there until the
    column backfill of each source fills them).
    """
    with conn.cursor() as cur:
        cur.execute(RAW_DDL)
        have = set(existing_columns(cur))
        added = [c.name for c in columns if c.name not in have]
        for name in added:
            cur.execute(f'alter table raw.responses add column "{name}" text')
    conn.commit()
    return added
