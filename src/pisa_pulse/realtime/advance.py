"""Advance int_student_indices between dbt ticks, so that each row's indices are computed once.

The serving views are "state + tail". Before this, the tail went through the whole
per-student index logic (int_student_indices_live: then ~0.8 ms a row on this machine) in every
serving view on every publish, so a row waiting one second for dbt was computed some thirty
times, and at 1,000 rows/s the publisher could not keep up. Now, right after each loader
tick, the loop runs the incremental step of dbt's own model `int_student_indices` — new rows
of the view `int_student_indices_live` upserted into the table, tombstoned rows removed (the
model's post-hook) — as one prepared statement, and the serving views read the tail's
indices from that table (plus, as a fallback, live rows the table has not reached yet).

The index logic stays in dbt (the view); this only moves rows from the view to the table
more often than dbt is invoked. dbt's own run of the model and this step exclude each other
through an advisory lock (the model's pre-hook); when dbt holds it, this step skips a turn
and the serving views compute those rows live for one publication.
"""

from __future__ import annotations

import psycopg2

from pisa_pulse.core.names import (
    DROP_TOMBSTONED_SQL,
    KEY,
    TABLE,
    VIEW,
    columns_of,
)
from pisa_pulse.core.names import (
    TRY_INDICES_LOCK_SQL as LOCK_SQL,
)


def upsert_sql(columns: list[str]) -> str:
    """The incremental step: live rows beyond the table's newest `_load_seq`, upserted on the
    model's unique key (a row re-loaded from its source replaces its older version). The
    constant upper bound keeps the planner on the `_load_seq` index (see marts_beyond_mark)."""
    cols = ", ".join(f'"{c}"' for c in columns)
    updated = [c for c in columns if c not in KEY]
    sets = ", ".join(f'"{c}"' for c in updated)
    excluded = ", ".join(f'excluded."{c}"' for c in updated)
    return f"""
insert into {TABLE} as t ({cols})
select {cols}
from {VIEW} as v
where
    v._load_seq > (select coalesce(max(done._load_seq), 0) from {TABLE} as done)
    and v._load_seq < 9223372036854775807
on conflict ({", ".join(KEY)}) do update set ({sets}) = row({excluded})
"""


class StudentIndicesAdvancer:
    """Runs the incremental step of int_student_indices on its own connection.

    The statement is prepared once per connection: planning the live view costs 100-250 ms,
    executing it ~0.12 ms a new row with the HOMEPOS cache warm, ~0.7 ms cold
    (pisa_pulse.bench.live_cost, 2026-12-02; docs/realtime.md). Any error drops the
    connection; the next call starts over (after dbt replaced the table, say), and the
    serving views stay exact meanwhile.
    """

    def __init__(self, warehouse_url: str):
        self.warehouse_url = warehouse_url
        self._conn = None
        self._prepared = False
        self.skipped_locked = 0  # turns skipped because dbt was running the model

    def _connection(self):
        if self._conn is None or self._conn.closed:
            self._conn = psycopg2.connect(
                self.warehouse_url, application_name="pulse-advance", connect_timeout=5
            )
            self._prepared = False
        return self._conn

    def _prepare(self, cur) -> bool:
        """Prepare the upsert; False while dbt has not built the model and its view yet."""
        table, view = columns_of(cur, TABLE), columns_of(cur, VIEW)
        if not table or not view:
            return False
        # on_schema_change='append_new_columns': the table may have columns the view dropped
        columns = [c for c in view if c in table]
        cur.execute(f"prepare pulse_advance as {upsert_sql(columns)}")
        cur.execute(f"prepare pulse_drop_tombstoned as {DROP_TOMBSTONED_SQL}")
        self._prepared = True
        return True

    def advance(self, deletions: bool = True) -> int | None:
        """Bring the table up to the loader. Returns the rows upserted, or None when skipped
        (the model is not built yet, or dbt is running it). `deletions`: also apply tombstones
        (only needed after a loader tick that deleted rows, and once at start)."""
        conn = self._connection()
        try:
            with conn, conn.cursor() as cur:
                if not self._prepared and not self._prepare(cur):
                    return None
                cur.execute(LOCK_SQL)
                if not cur.fetchone()[0]:
                    self.skipped_locked += 1
                    return None
                cur.execute("execute pulse_advance")
                upserted = cur.rowcount
                if deletions:
                    cur.execute("execute pulse_drop_tombstoned")
            return upserted
        except psycopg2.Error:
            self.close()
            raise

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None
                self._prepared = False
