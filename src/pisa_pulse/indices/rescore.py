"""Rescore a country's rows after its parameters changed (a HOMEPOS calibration landed).

Each row's indices are computed once, when it lands (src/pisa_pulse/realtime/advance.py). When
`pulse calibrate homepos` writes a new block for a country, the rows scored before it were
scored with the old block (DEFAULT, provisional), while a rebuild from scratch would score
them all with the new one. So, right after the calibration, every row of the country is
scored again, and the country's additive state is recomputed:

1. one transaction per country: the country's rows up to the table's newest `_load_seq` are
   scored again from the live view into a temporary table (rows beyond that mark are the
   advance's, already scored with the new block); then, holding the lock of
   int_student_indices only for the copy (the loop's advance skips a turn meanwhile), they
   replace the country's rows, tombstoned rows removed as the model's post-hook does;
2. in the same transaction, under the state's lock (the state model's pre-hook takes it), the
   country is queued in `calibration.rescored_countries`: the next dbt tick recomputes its
   state row from the rescored rows (as it does for a country with new tombstones) and
   empties the queue in the same transaction (post-hook), so no request is lost.

3. the calibration job then recomputes the queued countries' state itself
   (`fold_rescored_state`: one `dbt run` of country_index_state, the same incremental model
   the loop's dbt ticks run, serialised with them by the state lock of its pre-hook). The
   loop asks for a dbt tick only when its loader brought rows: a rescore that landed once
   the stream was quiet, or while the last dbt tick of a load held the state lock, stayed
   queued, and the country's served figures kept their old-block state until rows came
   again (tests/realtime/test_calibration_interleaving.py; the likely cause of the ESCS
   differences `pulse check` found after the 1,000/s benchmark, ARE served 0.287 vs 0.290
   recomputed, whose last calibration ended as the load did: not verified on that run).

Until the queue is taken the served numbers of the country mix old state and new rows for a
few seconds, as after a deletion; `marts.forage_escs.escs_provisional` stays true meanwhile
(the country is pending or queued), so the dashboard does not show them as final.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

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

# The additive state that recomputes a rescored country (its pre-hook takes STATE_LOCK_SQL).
STATE_MODEL = "country_index_state"


def rescore_country(conn, cnt: str) -> int:
    """Score every computed row of `cnt` again and queue its state; returns the rows rescored.

    The scoring (every index of every row of the country, ~0.1-0.7 ms a row) runs before the
    lock is taken, into a temporary table; under the lock only the copy. While the lock is
    held the loop's advance skips its turns, and at 1,000 rows/s the rows it leaves behind
    passed `publish_tail_max` within three seconds, so publications stopped for as long as a
    large country took to score (seen: lost commits during calibrations, issue 12). Rows
    that change meanwhile are safe: a row advanced after `mark` was scored with the new block
    (the parameters were rebuilt before this runs), and a row deleted at its source since
    the scoring is dropped again by the tombstone step after the copy.
    """
    with conn, conn.cursor() as cur:
        table, view = columns_of(cur, TABLE), columns_of(cur, VIEW)
        if not table or not view:  # dbt has not built the model yet: nothing was scored
            cur.execute("delete from calibration.rescore_pending where cnt = %s", (cnt,))
            return 0
        # The advance's high-water mark, read under its lock in a transaction of its own: an
        # advance in flight (which may have scored with the old block) commits first, so its
        # rows fall at or below the mark, and every later advance scores with the new block.
        # One serial writer: no smaller _load_seq appears later.
        cur.execute(INDICES_LOCK_SQL)
        cur.execute(f"select coalesce(max(_load_seq), 0) from {TABLE}")
        (mark,) = cur.fetchone()
    with conn, conn.cursor() as cur:
        cols = ", ".join(f'"{c}"' for c in view if c in table)
        cur.execute(
            f"create temporary table pulse_rescored on commit drop as select {cols} from {VIEW}"
            " where cnt = %s and _load_seq <= %s",
            (cnt, mark),
        )
        rescored = cur.rowcount
        # The state's lock first: waiting for a dbt tick (1-2 s) while holding the indices'
        # lock would stop the advance as long. Nothing holds the indices' lock while it
        # waits for the state's, so this order cannot deadlock.
        cur.execute(STATE_LOCK_SQL)
        cur.execute(INDICES_LOCK_SQL)
        cur.execute(f"delete from {TABLE} where cnt = %s and _load_seq <= %s", (cnt, mark))
        cur.execute(f"insert into {TABLE} ({cols}) select {cols} from pulse_rescored")
        cur.execute(DROP_TOMBSTONED_SQL)
        cur.execute("insert into calibration.rescored_countries (cnt) values (%s)", (cnt,))
        # done: the calibration's marker goes in the same transaction (indices/calibrate.py)
        cur.execute("delete from calibration.rescore_pending where cnt = %s", (cnt,))
    return rescored


def _app_name() -> str:
    """The calibrate job's session name when run by `pulse run` (PGAPPNAME, see
    realtime/priority.py: its backends are then lowered like the job), else our own."""
    return os.environ.get("PGAPPNAME") or "pulse-rescore"


def rescore_countries(warehouse_url: str, countries: list[str], progress=print) -> dict[str, int]:
    """Rescore each country in its own transaction; {country: rows rescored}."""
    done = {}
    ensure_calibration_tables(warehouse_url)  # the queue: a rescore also works before dbt ran
    conn = psycopg2.connect(warehouse_url, application_name=_app_name())
    try:
        for cnt in countries:
            started = time.perf_counter()
            done[cnt] = rescore_country(conn, cnt)
            progress(f"rescored {cnt}: {done[cnt]} rows in {time.perf_counter() - started:.1f} s")
    finally:
        conn.close()
    return done


def queued_countries(warehouse_url: str) -> list[str]:
    """Countries rescored whose state no dbt run of the state model has recomputed yet."""
    conn = psycopg2.connect(warehouse_url, application_name="pulse-rescore")
    try:
        with conn.cursor() as cur:
            cur.execute("select to_regclass('calibration.rescored_countries') is not null")
            if not cur.fetchone()[0]:
                return []
            cur.execute("select distinct cnt from calibration.rescored_countries order by cnt")
            return [r[0] for r in cur.fetchall()]
    finally:
        conn.close()


def fold_rescored_state(warehouse_url: str, dbt_dir: Path | None = None) -> list[str]:
    """Recompute the additive state of the queued countries now; returns them ([] if none).

    One `dbt run` of the state model: its incremental step recomputes every queued country
    from its rescored rows (and adds the other countries' new rows, as any tick does), and
    its post-hook empties the queue in the same transaction. It waits for a dbt tick of the
    loop running the model (the pre-hook's lock) and needs no new rows, unlike the loop's
    ticks. `dbt_dir` holds dbt's target/ and logs/ (reusing one lets dbt parse partially).
    """
    from pisa_pulse.core.dbt import run_dbt

    queued = queued_countries(warehouse_url)
    if not queued:
        return []
    with tempfile.TemporaryDirectory(prefix="pulse_rescore_") as tmp:
        base = Path(dbt_dir or tmp)
        run_dbt(
            ["run", "--select", STATE_MODEL, "--quiet"],
            warehouse_url,
            target_path=base / "target",
            log_path=base / "logs",
        )
    return queued
