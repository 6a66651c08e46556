"""A calibration that lands mid-stream: the country's rows are scored again (indices/rescore.py).

Rows of a country without a HOMEPOS block ('ALB', copies of real rows without their
country-dependent official indices, as the simulator sends them) are scored with the DEFAULT
block and folded into the additive state. Then a calibration lands (France's real block
written as ALB's version 1, as `pulse calibrate homepos` writes one). Without rescoring, the
served state keeps the old scores and differs from a rebuild; after `rescore_countries` and
one real-time dbt tick it equals a rebuild from nothing, digit for digit.
"""

from __future__ import annotations

import csv

import pytest

from pisa_pulse.indices.params import SEEDS_DIR
from pisa_pulse.indices.rescore import rescore_countries
from pisa_pulse.loader.raw_fixture import pool_rows
from pisa_pulse.sim.pool import COUNTRY_DEPENDENT_INDICES
from tests.support.marts_world import REALTIME, MartsWorld

ALB_OFFSET = 300_000
COMPARED = ("marts.country_index_state", "marts.forage_escs", "marts.country_profile")


def _land_calibration(world: MartsWorld, cnt: str, block_of: str) -> None:
    """Write `block_of`'s seed block as `cnt`'s calibration version 1 and refresh the params."""
    with open(SEEDS_DIR / "homepos_item_params.csv") as f:
        block = [r for r in csv.DictReader(f) if r["scope"] == block_of]
    for r in block:
        steps = [float(r[f"b{k}"]) if r[f"b{k}"] else None for k in range(1, 6)]
        world.execute(
            "insert into calibration.homepos_params"
            " (cnt, version, method, item, a, b1, b2, b3, b4, b5, n_rows)"
            " values (%s, 1, 'official_fit', %s, %s, %s, %s, %s, %s, %s, 100)",
            (cnt, r["item"], float(r["a"]), *steps),
        )
    world.dbt_in_process("run", "--select", "int_homepos_params")


def built_world(server: str, tmp, prefix: str) -> tuple[MartsWorld, list[dict]]:
    """A world with the real rows loaded and built; and 'ALB' (France's rows, new ids), not
    loaded yet."""
    world = MartsWorld.create(server, tmp, prefix=prefix)
    rows = [dict(r, _id=i + 1) for i, r in enumerate(pool_rows())]
    albania = [dict(r, CNT="ALB", _id=ALB_OFFSET + r["_id"]) for r in rows if r["CNT"] == "FRA"]
    world.dbt_in_process("seed")
    world.dbt_in_process("run")
    world.insert(rows)
    return world, albania


@pytest.fixture(scope="module")
def worlds(pg_server, tmp_path_factory):
    world, albania = built_world(pg_server, tmp_path_factory.mktemp("rescore"), "rescore")
    world.insert(albania[:200], drop_official=COUNTRY_DEPENDENT_INDICES)
    world.dbt_in_process(*REALTIME)

    _land_calibration(world, "ALB", block_of="FRA")
    world.insert(albania[200:], drop_official=COUNTRY_DEPENDENT_INDICES)
    world.dbt_in_process(*REALTIME)
    world.stale = {r: world.texts(r) for r in COMPARED}  # type: ignore[attr-defined]
    world.sources_before = world.query(  # type: ignore[attr-defined]
        "select homepos_param_source as source, count(*) as n"
        " from intermediate.int_student_indices where cnt = 'ALB' group by 1 order by 1"
    )

    world.rescored = rescore_countries(world.url, ["ALB"], progress=lambda _: None)  # type: ignore[attr-defined]
    world.queued = world.query("select cnt from calibration.rescored_countries")  # type: ignore[attr-defined]
    world.dbt_in_process(*REALTIME)
    world.close()

    full = world.copy_to("rescore_full")
    full.dbt("seed", "--full-refresh")
    full.dbt("run", "--full-refresh")
    return world, full


def test_rows_scored_before_the_calibration_are_scored_again(worlds):
    world, _ = worlds
    # before: the first 200 rows with the DEFAULT block, the later ones with the new block
    assert {r["source"]: r["n"] for r in world.sources_before} == {
        "default": 200,
        "calibration_official_fit": len(pool_rows_of("FRA")) - 200,
    }
    assert world.rescored == {"ALB": len(pool_rows_of("FRA"))}
    after = world.query(
        "select distinct homepos_param_source as source, homepos_provisional as provisional"
        " from intermediate.int_student_indices where cnt = 'ALB'"
    )
    assert after == [{"source": "calibration_official_fit", "provisional": False}]


def test_the_state_tick_takes_the_queue_and_empties_it(worlds):
    world, _ = worlds
    assert world.queued == [{"cnt": "ALB"}]
    assert world.query("select count(*) as n from calibration.rescored_countries")[0]["n"] == 0


@pytest.mark.parametrize("relation", COMPARED)
def test_without_rescoring_the_state_differs_from_a_rebuild(worlds, relation):
    world, full = worlds
    assert world.stale[relation] != full.texts(relation)


@pytest.mark.parametrize("relation", COMPARED)
def test_after_rescoring_the_state_equals_a_rebuild(worlds, relation):
    world, full = worlds
    assert world.texts(relation) == full.texts(relation)


def pool_rows_of(cnt: str) -> list[dict]:
    return [r for r in pool_rows() if r["CNT"] == cnt]
