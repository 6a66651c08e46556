"""The warehouse's names the Python side uses: the per-student indices table and view, and
the advisory locks the dbt models' hooks take too (macros/realtime.sql).

One module, so the loop's advance (realtime/advance.py) and the rescore after a calibration
(indices/rescore.py) name the same objects without importing each other.
"""

from __future__ import annotations

TABLE = "intermediate.int_student_indices"
VIEW = "intermediate.int_student_indices_live"
KEY = ("cnt", "id")
# The lock the model's pre-hook takes too (macro student_indices_lock in macros/realtime.sql).
TRY_INDICES_LOCK_SQL = "select pg_try_advisory_xact_lock(hashtext('pulse.int_student_indices'))"
# The model's post-hook: a row removed from a source after it was copied here goes away.
DROP_TOMBSTONED_SQL = f"""
delete from {TABLE} as t
using raw.responses_deleted as d
where d.cnt = t.cnt and d.id = t.id and d._load_seq > t._load_seq
"""


def columns_of(cur, qualified: str) -> list[str]:
    schema, name = qualified.split(".")
    cur.execute(
        "select column_name from information_schema.columns "
        "where table_schema = %s and table_name = %s order by ordinal_position",
        (schema, name),
    )
    return [r[0] for r in cur.fetchall()]
