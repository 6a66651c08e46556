"""Rescore a country's rows after its parameters changed (a HOMEPOS calibration landed).

Each row's indices are computed once, when it lands (src/pisa_pulse/realtime/advance.py). When
`pulse calibrate homepos` writes a new block for a country, the rows scored before it were
scored with the old block (DEFAULT, provisional), while a rebuild from scratch would score
them all with the new one. So, right after the calibration, every row of the country is
scored again, and the country's additive state is recomputed:

1. one transaction per country, holding the lock of int_student_indices (the loop's advance
   skips a turn meanwhile; the serving views compute newer rows live): the country's rows up
   to the table's newest `_load_seq` are deleted and inserted again from the live view
   (rows beyond it are the advance's, already scored with the new block), tombstoned rows
   removed as the model's post-hook does;
2. in the same transaction, under the state's lock (the state model's pre-hook takes it), the
   country is queued in `calibration.rescored_countries`: the next dbt tick recomputes its
   state row from the rescored rows (as it does for a country with new tombstones) and
   empties the queue in the same transaction (post-hook), so no request is lost.

Until that tick the served numbers of the country mix old state and new rows for a second
or two, as after a deletion.
"""

from __future__ import annotations

import time

import psycopg2

from pisa_pulse.core.names import (
    DROP_TOMBSTONED_SQL,
    INDICES_LOCK_SQL,
    STATE_LOCK_SQL,
    TABLE,
    VIEW,
    columns_of,
)
from pisa_pulse.indices.calibration_tables import ensure_calibration_tables


def rescore_country(conn, cnt: str) -> int:
    """Score every computed row of `cnt` again and queue its state; returns the rows rescored."""
    with conn, conn.cursor() as cur:
        table, view = columns_of(cur, TABLE), columns_of(cur, VIEW)
        if not table or not view:  # dbt has not built the model yet: nothing was scored
            cur.execute("delete from calibration.rescore_pending where cnt = %s", (cnt,))
            return 0
        cols = ", ".join(f'"{c}"' for c in view if c in table)
        cur.execute(INDICES_LOCK_SQL)
        cur.execute(f"select coalesce(max(_load_seq), 0) from {TABLE}")
        (mark,) = cur.fetchone()
        cur.execute(f"delete from {TABLE} where cnt = %s and _load_seq <= %s", (cnt, mark))
        cur.execute(
            f"insert into {TABLE} ({cols}) select {cols} from {VIEW}"
            " where cnt = %s and _load_seq <= %s",
            (cnt, mark),
        )
        rescored = cur.rowcount
        cur.execute(DROP_TOMBSTONED_SQL)
        cur.execute(STATE_LOCK_SQL)
        cur.execute("insert into calibration.rescored_countries (cnt) values (%s)", (cnt,))
        # done: the calibration's marker goes in the same transaction (indices/calibrate.py)
        cur.execute("delete from calibration.rescore_pending where cnt = %s", (cnt,))
    return rescored


def rescore_countries(warehouse_url: str, countries: list[str], progress=print) -> dict[str, int]:
    """Rescore each country in its own transaction; {country: rows rescored}."""
    done = {}
    ensure_calibration_tables(warehouse_url)  # the queue: a rescore also works before dbt ran
    conn = psycopg2.connect(warehouse_url, application_name="pulse-rescore")
    try:
        for cnt in countries:
            started = time.perf_counter()
            done[cnt] = rescore_country(conn, cnt)
            progress(f"rescored {cnt}: {done[cnt]} rows in {time.perf_counter() - started:.1f} s")
    finally:
        conn.close()
    return done
