"""Issue 14 end to end: a new country streamed with its official values blanked is calibrated by
the data trigger of the running `pulse run` (jobs on, as `pulse up` starts it), and its served
ESCS turns from provisional to final without anyone running a command.

One real world: application databases and the warehouse on the session's PostgreSQL, the
simulator's rows (FRA, which has a seed block, and DEU, which has none), `pulse run` as a
subprocess with its default jobs. DEU's rows carry none of the official indices (HOMEPOS,
ESCS and every other index column set to NA before they are committed), so everything is
computed from the raw answers. The test:

1. backfills DEU below the calibration threshold and waits for the first build;
2. checks the published Forage table says DEU's ESCS is provisional (FRA's final);
3. streams DEU rows until the warehouse holds `DEFAULT_MIN_ROWS` scorable rows (the time
   "the threshold is reached"), keeps streaming slowly, and times until the published ESCS
   says final (target: within 120 s, docs/homepos.md);
4. then, with the stream stopped and everything served: the calibration row exists (MML),
   every DEU row is scored with it, and the served ESCS mean equals a recomputation from the
   warehouse's live view (every row scored afresh with the blocks in force).
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid

import pytest

from pisa_pulse.core import codebook, config
from pisa_pulse.indices.calibrate import DEFAULT_MIN_ROWS
from pisa_pulse.realtime.probe import served_count, source_total, wait_for
from tests.support.databases import create_database, query

pytestmark = pytest.mark.integration

NEW, SEEDED = "DEU", "FRA"
COUNTRIES = [NEW, SEEDED]
BACKFILL_NEW = 1_700  # ~1,630 scorable: below the 2,000 the calibration needs
FIRST_BUILD_S = 900.0  # seed + full build on a busy 2-core machine
FINAL_WITHIN_S = 120.0  # issue 14: final within about two minutes of the threshold
# The official indices a country's rows may carry: all blanked, so all are computed.
OFFICIAL = (
    "tmins lmins mmins smins durecec misced fisced hisced misced_d fisced_d hisced_d paredint"
    " pared bmmj1 bfmj2 hisei homepos belong escs wealth cultposs hedres ictres"
).split()


def _insert_blanked(settings, country: str, n: int, rng: random.Random) -> None:
    """Commit n simulator submissions of `country` with every official index set to NA."""
    from pisa_pulse.sim import rows
    from pisa_pulse.sim.control import IdAllocator, connect
    from pisa_pulse.sim.messiness import Messifier

    names = codebook.variables()
    blank = [names.index(c) for c in OFFICIAL]
    ids = IdAllocator(settings, rng)
    try:
        batch = rows.copy_text(country, ids.take(n), rng, Messifier(None, rng))
    finally:
        ids.close()
    out = []
    for row_id, text in batch:
        cells = text.split("\t")
        for i in blank:
            cells[i] = "NA"
        out.append((row_id, "\t".join(cells)))
    conn = connect(settings.source_url(country))
    try:
        with conn, conn.cursor() as cur:
            rows.copy_rows(cur, out)
    finally:
        conn.close()


class World:
    def __init__(self, tmp, pg_server):
        self.tmp = tmp
        prefix = f"hs{uuid.uuid4().hex[:6]}"
        self.warehouse = create_database(pg_server, f"{prefix}_warehouse")
        self.sqlite = tmp / "home" / "pulse.db"
        self.env = {
            **os.environ,
            "PULSE_HOME": str(tmp / "home"),
            "PULSE_WAREHOUSE_URL": self.warehouse,
            "PULSE_SOURCE_URL_TEMPLATE": f"{pg_server}/{prefix}_{{country}}",
            "PULSE_SOURCES": ",".join(c.lower() for c in COUNTRIES),
        }
        self.settings = config.Settings(
            home=tmp / "home",
            warehouse_url=self.warehouse,
            source_url_template=self.env["PULSE_SOURCE_URL_TEMPLATE"],
            sources=[c.lower() for c in COUNTRIES],
        )
        self.process: subprocess.Popen | None = None

    def start_pipeline(self) -> None:
        # `pulse run` with its default jobs (the calibrate job and its data trigger on), as
        # the supervisor of `pulse up` starts it.
        log = open(self.tmp / "pulse-run.log", "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pisa_pulse.cli", "run", "--sqlite", str(self.sqlite)],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def log_tail(self) -> str:
        out = (self.tmp / "pulse-run.log").read_text()[-2000:]
        job = self.tmp / "home" / "logs" / "job-calibrate.log"
        if job.exists():
            out += "\n--- job-calibrate.log ---\n" + job.read_text()[-2000:]
        return out

    def events(self) -> list[dict]:
        path = self.tmp / "home" / "logs" / "realtime.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def query(self, sql: str, params=None) -> list[tuple]:
        return query(self.warehouse, sql, params)

    def served_escs(self) -> dict[str, dict]:
        try:
            db = sqlite3.connect(f"file:{self.sqlite}?mode=ro", uri=True, timeout=5)
        except sqlite3.OperationalError:
            return {}
        db.row_factory = sqlite3.Row
        try:
            return {r["country"]: dict(r) for r in db.execute("select * from forage_escs")}
        except sqlite3.OperationalError:
            return {}
        finally:
            db.close()

    def scorable(self, cnt: str) -> int:
        """Rows of `cnt` with a computed HOMEPOS (≥ 3 valid items): what MML needs."""
        return self.query(
            "select count(homepos_computed) from intermediate.int_student_indices where cnt = %s",
            (cnt,),
        )[0][0]

    def rescored(self) -> bool:
        """No row of the new country is scored with the DEFAULT block any more."""
        return not self.query(
            "select 1 from intermediate.int_student_indices where cnt = %s"
            " and homepos_computed is not null and homepos_param_source = 'default' limit 1",
            (NEW,),
        )

    def recomputed(self) -> tuple[float, int]:
        """The new country's weighted mean ESCS from the live view, which scores every row
        afresh with the parameters in force, and its count of ESCS values."""
        mean, n = self.query(
            "select sum(w_fstuwt::numeric * escs::numeric) filter (where w_fstuwt > 0)"
            " / sum(w_fstuwt::numeric) filter (where w_fstuwt > 0 and escs is not null),"
            " count(escs) from intermediate.int_student_indices_live where cnt = %s",
            (NEW,),
        )[0]
        return float(mean), n

    def served_equals_recomputed(self) -> bool:
        served = self.served_escs()[NEW]
        mean, n = self.recomputed()
        return served["n"] == n and abs(served["value"] - mean) <= 1e-9 * abs(mean)

    def all_served(self) -> bool:
        return served_count(self.sqlite) == source_total(self.settings, COUNTRIES)


class Streamer(threading.Thread):
    """Commits `rate` blanked DEU rows a second, in 10-row transactions, until stopped."""

    def __init__(self, world: World, rate: float):
        super().__init__(daemon=True)
        self.world, self.rate = world, rate
        self.stopped = threading.Event()
        self.rng = random.Random(5)
        self.errors: list[str] = []

    def run(self) -> None:
        while not self.stopped.wait(10 / self.rate):
            try:
                _insert_blanked(self.world.settings, NEW, 10, self.rng)
            except Exception as exc:  # reported by the test, never swallowed silently
                self.errors.append(repr(exc))

    def stop(self) -> None:
        self.stopped.set()
        self.join(30)


@pytest.fixture(scope="module")
def world(pg_server, tmp_path_factory):
    from pisa_pulse.sim import api as sim

    w = World(tmp_path_factory.mktemp("homepos_streamed"), pg_server)
    sim.setup_databases(w.settings)
    sim.backfill(w.settings, 300, countries=[SEEDED], seed=3)
    rng = random.Random(9)
    for _ in range(BACKFILL_NEW // 100):
        _insert_blanked(w.settings, NEW, 100, rng)
    w.start_pipeline()
    total = 300 + BACKFILL_NEW
    built = wait_for(lambda: served_count(w.sqlite) == total, FIRST_BUILD_S, interval=0.5)
    assert built is not None, f"pulse run never served the backfill:\n{w.log_tail()}"
    print(f"\nfirst build and first publication: {built:.0f} s")
    yield w
    if w.process and w.process.poll() is None:
        w.process.send_signal(signal.SIGTERM)
        try:
            w.process.wait(60)
        except subprocess.TimeoutExpired:
            w.process.kill()
            w.process.wait()
    sim.drop_databases(w.settings, COUNTRIES)


def test_rows_carry_no_official_values(world):
    blanked = world.query(
        "select count(*) filter (where homepos_official is not null or escs_official is not null"
        " or hisei_official is not null or belong_official is not null), count(*)"
        " from intermediate.int_student_indices where cnt = %s",
        (NEW,),
    )[0]
    assert blanked == (0, BACKFILL_NEW)


def test_new_country_is_provisional_before_the_threshold(world):
    assert world.scorable(NEW) < DEFAULT_MIN_ROWS
    served = world.served_escs()
    assert served[NEW]["escs_provisional"] == 1 and served[NEW]["value"] is not None
    assert served[SEEDED]["escs_provisional"] == 0
    assert not world.query("select 1 from calibration.homepos_params where cnt = %s", (NEW,))


def test_calibrated_by_the_data_and_final_within_two_minutes(world):
    streamer = Streamer(world, rate=100.0)
    streamer.start()
    try:
        reached = wait_for(lambda: world.scorable(NEW) >= DEFAULT_MIN_ROWS, 120, interval=0.25)
        assert reached is not None, world.log_tail()
        threshold_at = time.time()
        streamer.rate = 5.0  # keep streaming, slowly, while the job runs
        flag = wait_for(
            lambda: world.served_escs()[NEW]["escs_provisional"] == 0, 600, interval=0.25
        )
        # Final numbers, not only the flag: every row scored with the calibrated block and
        # the served mean equal to a recomputation over the rows loaded so far.
        final = wait_for(lambda: world.rescored() and world.served_equals_recomputed(), 600, 0.25)
        final = None if final is None else time.time() - threshold_at
    finally:
        streamer.stop()
    assert not streamer.errors, streamer.errors
    events = [e for e in world.events() if e["ts"] >= threshold_at - 60]
    timeline = [
        f"{e['ts'] - threshold_at:+7.1f} s {e['event']} {e.get('job', '')}"
        f" {e.get('countries') or e.get('seconds') or ''}"
        for e in events
        if e["event"].startswith("job")
    ]
    print("\nthreshold reached (t = 0) → jobs:\n" + "\n".join(timeline))
    assert flag is not None, "DEU's ESCS never became final:\n" + world.log_tail()
    assert final is not None, "DEU's rows were never rescored:\n" + world.log_tail()
    print(
        f"threshold → served escs_provisional false: {flag:.1f} s; → rows rescored and served"
        f" mean = recomputation: {final:.1f} s (target ≤ {FINAL_WITHIN_S:.0f} s)"
    )
    triggered = [e for e in events if e["event"] == "job_triggered"]
    assert triggered and NEW in triggered[0]["countries"], timeline
    assert final <= FINAL_WITHIN_S, timeline


def test_rescored_and_served_mean_equals_a_recomputation(world):
    # The stream has stopped: once every committed row is served, the numbers are final.
    assert wait_for(world.all_served, 60, interval=0.5) is not None, world.log_tail()
    (calibration,) = world.query(
        "select method, version, n_rows from calibration.homepos_params where cnt = %s"
        " group by method, version, n_rows",
        (NEW,),
    )
    assert calibration[0] == "mml" and calibration[2] >= DEFAULT_MIN_ROWS
    sources = world.query(
        "select homepos_param_source, homepos_provisional, count(*)"
        " from intermediate.int_student_indices where cnt = %s and homepos_computed is not null"
        " group by 1, 2",
        (NEW,),
    )
    assert sources and all(s == "calibration_mml" and not p for s, p, _ in sources), sources
    assert wait_for(world.served_equals_recomputed, 30, interval=0.5) is not None, (
        world.served_escs(),
        world.recomputed(),
    )
    mean, n = world.recomputed()
    served = world.served_escs()[NEW]
    print(
        f"\n{NEW} served ESCS {served['value']:.6f} over {served['n']} students (provisional"
        f" {served['escs_provisional']}), recomputed {mean:.6f} over {n}"
    )
    # The table the loop advances, rescored, agrees row by row with the live view.
    differ = world.query(
        "select count(*) from intermediate.int_student_indices as t"
        " join intermediate.int_student_indices_live as l using (cnt, id)"
        " where t.cnt = %s and (t.homepos is distinct from l.homepos"
        " or t.escs is distinct from l.escs)",
        (NEW,),
    )[0][0]
    assert differ == 0


def test_pulse_check_equals_a_full_recomputation(world):
    """The product's own check: a scratch warehouse built from nothing (with the calibration
    in force) renders the same Forage answers as those served."""
    from pisa_pulse.realtime.check import check

    result = check(world.settings, sqlite_path=world.sqlite, wait=30, work_dir=world.tmp)
    assert result.ok, result.problems
