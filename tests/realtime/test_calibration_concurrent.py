"""Calibrations racing the real-time loop for real (issues 12 and 14).

Unlike test_calibration_interleaving.py (fixed steps), everything here runs at once: the loop
(`RealtimeLoop` in its own thread, dbt ticks in a `DbtWorker` thread beside it, as in
`pulse run`) over a stream of rows of two new countries that never pauses while the
calibration job (`calibrate_homepos`, the fit replaced by known blocks) writes blocks,
refreshes int_homepos_params, rescores and recomputes the state, twice (a first calibration,
then a refit with other blocks); then the stream stops.

Checked: while it all runs, a country served as final (`escs_provisional` false) is served
with exactly the mean a recomputation from every live row gives in the same snapshot; once
quiet, every served mean equals the recomputation and every stored row equals a cold
recomputation (WLE cache emptied).
"""

from __future__ import annotations

import itertools
import threading
import time
from types import SimpleNamespace

import psycopg2
import psycopg2.extensions
import pytest

from pisa_pulse.core.dbt import REALTIME, DbtSession
from pisa_pulse.indices import calibrate
from pisa_pulse.indices.homepos_fit import FitResult
from pisa_pulse.indices.homepos_model import load_params
from pisa_pulse.loader.raw_fixture import pool_rows
from pisa_pulse.realtime.advance import StudentIndicesAdvancer
from pisa_pulse.realtime.dbt_worker import DbtWorker
from pisa_pulse.realtime.loop import LoopSettings, RealtimeLoop
from pisa_pulse.sim.pool import COUNTRY_DEPENDENT_INDICES
from tests.support.marts_world import DIRECT_MEANS_SQL, MartsWorld, direct_means

NEW = {"ALB": "FRA", "ARE": "MEX"}  # new country -> the real rows it streams
BLOCKS = [{"ALB": "FRA", "ARE": "MEX"}, {"ALB": "ITA", "ARE": "FRA"}]  # first fit, refit


class _EndlessStream:
    """The loader's stand-in: each tick inserts the next few rows of the new countries (new
    ids each round) until stopped."""

    def __init__(self, world: MartsWorld, per_tick: int = 6):
        self.world, self.per_tick = world, per_tick
        rows = pool_rows()
        by_country = {cnt: [r for r in rows if r["CNT"] == source] for cnt, source in NEW.items()}
        self._rows = self._cycle(by_country)
        self.stopped = threading.Event()
        self.inserted = 0

    @staticmethod
    def _cycle(by_country):
        for round_ in itertools.count():
            for i in range(max(len(v) for v in by_country.values())):
                for k, (cnt, rows) in enumerate(sorted(by_country.items())):
                    if i < len(rows):
                        yield dict(rows[i], CNT=cnt, _id=(round_ * 10 + k + 1) * 100_000 + i)

    def tick(self):
        rows = [] if self.stopped.is_set() else list(itertools.islice(self._rows, self.per_tick))
        if rows:
            self.world.insert(rows, drop_official=COUNTRY_DEPENDENT_INDICES)
            self.inserted += len(rows)
        return SimpleNamespace(total_rows=len(rows), deleted={}, down=[])


class _Publisher:
    def publish_once(self) -> bool:
        return True


def _sample(world: MartsWorld) -> list[dict]:
    """Served ESCS, its flag and the direct recomputation of the new countries, one snapshot."""
    conn = world.connect()
    try:
        conn.set_session(
            isolation_level=psycopg2.extensions.ISOLATION_LEVEL_REPEATABLE_READ, readonly=True
        )
        with conn.cursor() as cur:
            cur.execute(
                "select country, value, escs_provisional from marts.forage_escs"
                " where country = any(%s)",
                (list(NEW),),
            )
            served = {r[0]: (r[1], r[2]) for r in cur.fetchall()}
            cur.execute(DIRECT_MEANS_SQL.format(x="escs"))
            direct = {r[0]: r[4] for r in cur.fetchall()}
        conn.rollback()
    finally:
        conn.close()
    return [
        {"cnt": c, "served": v, "provisional": p, "direct": direct.get(c)}
        for c, (v, p) in served.items()
    ]


@pytest.fixture(scope="module")
def run(pg_server, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("concurrent")
    world = MartsWorld.create(pg_server, tmp, prefix="concurrent")
    world.dbt_in_process("seed")
    world.dbt_in_process("run", "--exclude", "tag:slow")
    world.close()

    session = DbtSession(world.url, target_path=tmp / "loop_target", log_path=tmp / "loop_logs")
    session.selector = REALTIME
    worker = DbtWorker(session)
    advancer = StudentIndicesAdvancer(world.url)
    stream = _EndlessStream(world)
    loop = RealtimeLoop(
        stream,
        worker,
        _Publisher(),
        advancer=advancer,
        settings=LoopSettings(loader_interval=0.05, dbt_interval=0.2, dbt_max_share=1.0),
    )
    looping = threading.Thread(target=loop.run, name="loop", daemon=True)
    looping.start()

    samples: list[dict] = []
    sampling = threading.Event()

    def sampler():
        while not sampling.is_set():
            try:
                samples.extend(_sample(world))
            except psycopg2.Error:  # a view being replaced, say: skip the sample
                pass
            time.sleep(0.2)

    sampled = threading.Thread(target=sampler, name="sampler", daemon=True)
    sampled.start()

    reports = []
    try:
        for blocks in BLOCKS:
            deadline = time.monotonic() + 60
            target = stream.inserted + 200  # rows stream in before each job, and during it
            while stream.inserted < target and time.monotonic() < deadline:
                time.sleep(0.1)
            fits = {
                cnt: FitResult(
                    params=load_params(scope),
                    method="official_fit",
                    n_rows=1,
                    success=True,
                    objective=0,
                )
                for cnt, scope in blocks.items()
            }
            patch = pytest.MonkeyPatch()
            try:
                patch.setattr(
                    calibrate, "calibrate_country", lambda d, *a, fits=fits, **k: fits[d.cnt]
                )
                reports.append(
                    calibrate.calibrate_homepos(
                        world.url, countries=list(NEW), growth=1.0, dbt_dir=tmp / "job"
                    )
                )
            finally:
                patch.undo()
        stream.stopped.set()
        time.sleep(3.0)  # the loop ticks on, quiet
    finally:
        stream.stopped.set()
        loop.stop()
        looping.join(60)
        worker.close()
        advancer.close()
        sampling.set()
        sampled.join(30)
    final = _sample(world)
    world.execute("truncate reference.homepos_wle_cache")
    columns = "cnt, id, _load_seq, homepos_computed, homepos_param_source, escs"
    table = world.texts("intermediate.int_student_indices", columns)
    live = world.texts("intermediate.int_student_indices_live", columns)
    yield SimpleNamespace(
        world=world,
        reports=reports,
        samples=samples,
        final=final,
        table=table,
        live=live,
        direct=direct_means(world, "escs"),
        inserted=stream.inserted,
    )


def test_both_jobs_calibrated_and_rescored_while_rows_streamed(run):
    final = sum(not s["provisional"] for s in run.samples)
    print(f"rows streamed {run.inserted}, samples {len(run.samples)}, served as final {final}")
    for version, report in enumerate(run.reports, start=1):
        assert {c.cnt: (c.status, c.version) for c in report.countries} == {
            cnt: ("calibrated", version) for cnt in NEW
        }
        assert set(report.rescored) == set(NEW) and all(report.rescored.values())
    assert run.inserted > 400


def test_a_country_served_as_final_is_served_exactly(run):
    final = [s for s in run.samples if not s["provisional"]]
    assert final, "no sample saw a final country"
    wrong = [s for s in final if s["served"] != s["direct"]]
    assert not wrong, wrong[:5]


def test_once_quiet_everything_equals_a_recomputation(run):
    assert all(not s["provisional"] for s in run.final)
    assert all(s["served"] == s["direct"] for s in run.final), run.final
    assert run.table == run.live
    queued = run.world.query("select count(*) as n from calibration.rescored_countries")
    assert queued[0]["n"] == 0
