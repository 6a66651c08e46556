"""First start: build what the loop needs when the warehouse has never been built."""

from __future__ import annotations

import psycopg2

# Relations the loop reads or writes every tick; if one is missing, the project is built.
REQUIRED = (
    ("reference", "belong_wle_lookup_international"),
    # the newest seed: a warehouse built by an older version is seeded and built again
    ("reference", "learned_escs_imputation_params"),
    ("intermediate", "int_student_indices"),
    ("marts", "country_index_state"),
    ("marts", "submission_minute_state"),
    ("marts", "forage_submissions"),
    ("marts", "forage_submissions_over_time"),
    ("marts", "forage_learning_hours"),
    ("marts", "forage_escs"),
    ("marts", "forage_early_education_belonging"),
)


def missing_relations(warehouse_url: str) -> list[str]:
    conn = psycopg2.connect(warehouse_url, connect_timeout=5)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "select n.nspname || '.' || c.relname from pg_class c"
                " join pg_namespace n on n.oid = c.relnamespace"
            )
            present = {name for (name,) in cur.fetchall()}
    finally:
        conn.close()
    return [f"{s}.{t}" for s, t in REQUIRED if f"{s}.{t}" not in present]


def ensure_built(session, events) -> list[str]:
    """Seed and build the whole project once, when a required relation is missing.

    Needs the raw layer (the loader creates it on its first tick). Returns the dbt commands
    it ran (none when everything exists: a restart must not wait for dbt).
    """
    missing = missing_relations(session.warehouse_url)
    if not missing:
        return []
    events.emit("bootstrap", missing=missing)
    commands = [["seed"], ["run"]]
    for args in commands:
        invocation = session.invoke(args)
        events.emit(
            "bootstrap_dbt",
            args=args,
            ok=invocation.success,
            seconds=round(invocation.seconds, 3),
            error=invocation.error,
            failures=invocation.failures[:5],
        )
        if not invocation.success:
            detail = invocation.error or "; ".join(invocation.failures[:5])
            raise RuntimeError(f"dbt {' '.join(args)} failed at start: {detail}")
    return [" ".join(a) for a in commands]
