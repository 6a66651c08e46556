"""The rescore scores a country's rows without holding the indices' lock (indices/rescore.py):
the loop's advance keeps its turns while a large country is scored, and a row deleted at its
source between the scoring and the copy is still dropped (its tombstone), so the result
equals a rebuild from nothing.

Made deterministic with locks held by the test: an ACCESS EXCLUSIVE lock on raw.responses
stops the rescore inside its scoring; the state's advisory lock, held as a dbt tick holds
it, stops the rescore between its scoring and its copy.
"""

from __future__ import annotations

import threading
import time

import pytest

from pisa_pulse.core.names import STATE_LOCK_SQL, TRY_INDICES_LOCK_SQL
from pisa_pulse.indices.rescore import rescore_countries
from pisa_pulse.loader.raw_fixture import pool_rows
from pisa_pulse.sim.pool import COUNTRY_DEPENDENT_INDICES
from tests.indices.test_rescore import COMPARED, _land_calibration, built_world
from tests.support.marts_world import REALTIME, MartsWorld


def _rescore_in_thread(world: MartsWorld) -> tuple[threading.Thread, dict]:
    out: dict = {}

    def run():
        try:
            out["rescored"] = rescore_countries(world.url, ["ALB"], progress=lambda _: None)
        except Exception as exc:  # reported by the test
            out["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def _wait_for_rescore_waiting(world: MartsWorld, lock_kind: str, like: str) -> None:
    """Until the rescore's session waits on a lock of this kind, running a query like this."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        rows = world.query(
            "select count(*) as n from pg_stat_activity where application_name = 'pulse-rescore'"
            " and wait_event_type = 'Lock' and wait_event = %s and query ilike %s",
            (lock_kind, like),
        )
        if rows[0]["n"]:
            return
        time.sleep(0.05)
    raise AssertionError(f"the rescore never waited on a {lock_kind} lock ({like})")


@pytest.fixture(scope="module")
def worlds(pg_server, tmp_path_factory):
    world, albania = built_world(pg_server, tmp_path_factory.mktemp("relock"), "relock")
    world.insert(albania, drop_official=COUNTRY_DEPENDENT_INDICES)
    world.dbt_in_process(*REALTIME)
    _land_calibration(world, "ALB", block_of="FRA")
    observed: dict = {}

    # 1. Stopped inside its scoring (the live view reads raw.responses): the indices' lock
    #    is free, so the advance would get its turn.
    blocker = world.connect()
    with blocker.cursor() as cur:
        cur.execute("lock table raw.responses in access exclusive mode")
    thread, out = _rescore_in_thread(world)
    _wait_for_rescore_waiting(world, "relation", "%create temporary table%")
    probe = world.connect()
    with probe.cursor() as cur:
        cur.execute(TRY_INDICES_LOCK_SQL)
        observed["lock_free_while_scoring"] = cur.fetchone()[0]
    probe.rollback()
    probe.close()
    blocker.rollback()
    blocker.close()
    thread.join(120)
    observed["first"] = out

    # 2. Again (a refit of the same block), now stopped between its scoring and its copy by
    #    the state's lock, held as a dbt tick holds it; meanwhile one scored row is deleted
    #    at its source, as the loader records it (row and tombstone in one transaction).
    world.execute("insert into calibration.rescore_pending (cnt) values ('ALB')")
    holder = world.connect()
    with holder.cursor() as cur:
        cur.execute(STATE_LOCK_SQL)
    thread, out = _rescore_in_thread(world)
    _wait_for_rescore_waiting(world, "advisory", "%pulse_lock_country_state%")
    observed["deleted"] = world.delete("cnt = 'ALB' and id = %s", (albania[0]["_id"],))
    holder.rollback()
    holder.close()
    thread.join(120)
    observed["second"] = out
    observed["left_after_delete"] = world.query(
        "select count(*) as n from intermediate.int_student_indices where cnt = 'ALB' and id = %s",
        (albania[0]["_id"],),
    )[0]["n"]
    world.dbt_in_process(*REALTIME)  # folds the queued state, as the loop's tick does
    world.close()

    full = world.copy_to("relock_full")
    full.dbt("seed", "--full-refresh")
    full.dbt("run", "--full-refresh")
    return world, full, observed


def test_the_indices_lock_is_free_while_the_rows_are_scored(worlds):
    _, _, observed = worlds
    assert "error" not in observed["first"], observed["first"]
    assert observed["first"]["rescored"] == {"ALB": sum(r["CNT"] == "FRA" for r in pool_rows())}
    assert observed["lock_free_while_scoring"] is True


def test_a_row_deleted_between_scoring_and_copy_is_dropped(worlds):
    _, _, observed = worlds
    assert "error" not in observed["second"], observed["second"]
    assert observed["deleted"] == 1
    assert observed["left_after_delete"] == 0


@pytest.mark.parametrize("relation", COMPARED)
def test_after_both_rescores_the_state_equals_a_rebuild(worlds, relation):
    world, full, _ = worlds
    assert world.texts(relation) == full.texts(relation)
