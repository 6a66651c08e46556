"""The warehouse's names the Python side uses: the per-student indices table and view, and
the functions the dbt models' hooks call too (created by the on-run-start hook
`realtime_create_objects` in macros/realtime.sql, which owns their SQL: the advisory locks and
the tombstone step).

One module, so the loop's advance (realtime/advance.py) and the rescore after a calibration
(indices/rescore.py) name the same objects without importing each other.
"""

from __future__ import annotations

TABLE = "intermediate.int_student_indices"
VIEW = "intermediate.int_student_indices_live"
KEY = ("cnt", "id")
# The lock the model's pre-hook waits for; the loop only tries it (true: taken).
TRY_INDICES_LOCK_SQL = "select intermediate.pulse_try_lock_student_indices()"
INDICES_LOCK_SQL = "select intermediate.pulse_lock_student_indices()"
# The lock country_index_state's pre-hook takes.
STATE_LOCK_SQL = "select intermediate.pulse_lock_country_state()"
# The model's post-hook: a row removed from a source after it was copied here goes away.
DROP_TOMBSTONED_SQL = "select intermediate.pulse_drop_tombstoned_student_indices()"


def columns_of(cur, qualified: str) -> list[str]:
    schema, name = qualified.split(".")
    cur.execute(
        "select column_name from information_schema.columns "
        "where table_schema = %s and table_name = %s order by ordinal_position",
        (schema, name),
    )
    return [r[0] for r in cur.fetchall()]
