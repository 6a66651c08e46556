"""The slow HOMEPOS calibration job: six-item blocks for countries the seeds do not cover.

For every country with staged rows and no seed block it picks, in order:
1. `official_fit`: the country has at least `min_official` rows carrying official HOMEPOS;
2. `mml`: the country has at least `min_rows` scorable rows (marginal maximum likelihood from
   its raw answers and W_FSTUWT weights);
3. nothing yet: the country keeps the DEFAULT block and its values stay provisional.

The result lands in `calibration.homepos_params` (a new version per country); dbt's
`int_homepos_params` reads the newest version, so the job rebuilds that model when asked,
and then scores the country's rows again (indices/rescore.py): rows scored with the old block
would otherwise differ from a rebuild. Last, it recomputes the rescored countries' additive
state itself (`fold_rescored_state`) rather than leave them to the loop's next dbt tick, which
only comes when new rows arrive. A country is recalibrated only when its rows have grown by
`growth` since the last fit.

Entry point for schedulers: `calibrate_homepos(settings_or_url, countries=None, …)`.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import psycopg2

from pisa_pulse.core import config
from pisa_pulse.indices.calibration_tables import ensure_calibration_tables
from pisa_pulse.indices.homepos_model import (
    ITEMS,
    N_CAT,
    NATIONAL_BLOCK,
    block_countries,
    load_params,
    score_item,
    wle,
)
from pisa_pulse.indices.rescore import fold_rescored_state, rescore_countries

if TYPE_CHECKING:  # scipy is slow to import: only the calibration itself needs it
    from pisa_pulse.indices.homepos_fit import FitResult

DEFAULT_MIN_ROWS = 2000
DEFAULT_MIN_OFFICIAL = 30
DEFAULT_GROWTH = 2.0


@dataclass
class CountryData:
    """A country's scored answers: scores (n, 25), weights and official HOMEPOS (NaN if none)."""

    cnt: str
    scores: np.ndarray
    weights: np.ndarray
    official: np.ndarray

    @property
    def n_scorable(self) -> int:
        return int(((self.scores >= 0).sum(axis=1) >= 3).sum())

    @property
    def n_official(self) -> int:
        return int((~np.isnan(self.official)).sum())


@dataclass
class CountryOutcome:
    cnt: str
    status: str  # calibrated / up_to_date / too_few_rows / has_seed_block / failed
    n_rows: int = 0
    n_official: int = 0
    method: str | None = None
    version: int | None = None
    seconds: float = 0.0
    within_001_official: float | None = None  # share of official rows reproduced within 0.01
    message: str = ""


@dataclass
class CalibrationReport:
    countries: list[CountryOutcome] = field(default_factory=list)
    refreshed: bool = False
    rescored: dict[str, int] = field(default_factory=dict)  # country -> rows scored again
    folded: list[str] = field(default_factory=list)  # countries whose state was recomputed
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def _as_float(value) -> float:
    return float("nan") if value is None else float(value)


def load_country_data(conn, countries: list[str] | None = None) -> dict[str, CountryData]:
    """Read the HOMEPOS items, weights and official HOMEPOS of staged rows, per country."""
    columns = ", ".join(item.lower() for item in ITEMS)
    sql = f"select cnt, {columns}, w_fstuwt, homepos from staging.stg_pisa__responses"
    args: tuple = ()
    if countries:
        sql += " where cnt = any(%s)"
        args = ([c.upper() for c in countries],)
    grouped: dict[str, list[tuple]] = {}
    with conn.cursor() as cur:
        cur.execute(sql, args)
        for row in cur:
            grouped.setdefault(row[0], []).append(row)
    out = {}
    for cnt, rows in grouped.items():
        scores = np.array(
            [
                [
                    score_item(item, None if v is None else str(v))
                    for item, v in zip(ITEMS, r[1:26], strict=True)
                ]
                for r in rows
            ]
        )
        weights = np.array([_as_float(r[26]) for r in rows])
        official = np.array([_as_float(r[27]) for r in rows])
        out[cnt] = CountryData(cnt, scores, weights, official)
    return out


def calibrate_country(
    data: CountryData, min_rows: int = DEFAULT_MIN_ROWS, min_official: int = DEFAULT_MIN_OFFICIAL
) -> FitResult | None:
    """Fit a block for one country by the best method its data allow (None: not enough)."""
    start = load_params("DEFAULT")
    if data.n_official >= min_official:
        from pisa_pulse.indices.homepos_fit import fit_to_official

        return fit_to_official(data.scores, data.official, start)
    if data.n_scorable >= min_rows:
        from pisa_pulse.indices.homepos_fit import fit_mml

        return fit_mml(data.scores, data.weights, start)
    return None


def _previous(conn) -> dict[str, tuple[int, str, int]]:
    """cnt → (newest version, method, n_rows) of the existing calibrations."""
    with conn.cursor() as cur:
        cur.execute(
            "select distinct on (cnt) cnt, version, method, n_rows from calibration.homepos_params"
            " order by cnt, version desc"
        )
        return {r[0]: (r[1], r[2], r[3] or 0) for r in cur.fetchall()}


def write_block(conn, cnt: str, fit: FitResult, version: int) -> None:
    """Insert the six block items of `fit` as `version` of `cnt` (caller commits)."""
    note = f"{fit.method}: {fit.message}"[:500]
    if fit.mu is not None:
        note += f"; {fit.population} population, mean {fit.mu:.4f}, sd {fit.sigma:.4f}"
    with conn.cursor() as cur:
        from pisa_pulse.indices.homepos_fit import BLOCK_INDEX

        for item, i in zip(NATIONAL_BLOCK, BLOCK_INDEX, strict=True):
            steps = [float(b) for b in fit.params.b[i, : N_CAT[i] - 1]]
            steps += [None] * (5 - len(steps))
            cur.execute(
                "insert into calibration.homepos_params"
                " (cnt, version, method, item, a, b1, b2, b3, b4, b5, n_rows, note)"
                " values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (cnt, version, fit.method, item, float(fit.params.a[i]), *steps, fit.n_rows, note),
            )
        # In the block's transaction: its rows must be rescored, even if this job dies first.
        cur.execute(
            "insert into calibration.rescore_pending (cnt) values (%s) on conflict do nothing",
            (cnt,),
        )


def refresh_params_model(warehouse_url: str, dbt_dir: Path | None = None) -> None:
    """Rebuild int_homepos_params so the next scoring uses the new blocks.

    `dbt_dir` holds dbt's target/ and logs/ (reusing one lets dbt parse partially).
    """
    from pisa_pulse.core.dbt import run_dbt

    with tempfile.TemporaryDirectory(prefix="pulse_calibrate_") as tmp:
        base = Path(dbt_dir or tmp)
        run_dbt(
            ["run", "--selector", "calibration", "--quiet"],  # int_homepos_params
            warehouse_url,
            target_path=base / "target",
            log_path=base / "logs",
        )


def prune_cache(conn) -> int:
    """Drop cached WLE values of parameter sets no country uses any more."""
    with conn.cursor() as cur:
        cur.execute(
            "delete from reference.homepos_wle_cache as w where not exists ("
            " select 1 from intermediate.int_homepos_params as p"
            " where p.param_version = w.param_version)"
        )
        return cur.rowcount


class CalibrationTrigger:
    """Is a calibration due by the data? True when a country without a seed block has reached
    the rows a calibration needs (`min_official` rows with official HOMEPOS, else `min_rows`
    rows) and has no calibration by that method yet, or has grown by `growth` since its last
    one (or since this trigger last fired for it, so a country the fit still turns down is not
    retried at every poll). One cheap count per country; the scheduler polls it
    (src/pisa_pulse/realtime/jobs.py) and runs the calibration job at once when it says so."""

    def __init__(
        self,
        warehouse_url: str,
        min_rows: int = DEFAULT_MIN_ROWS,
        min_official: int = DEFAULT_MIN_OFFICIAL,
        growth: float = DEFAULT_GROWTH,
    ):
        self.url = warehouse_url
        self.min_rows, self.min_official, self.growth = min_rows, min_official, growth
        self.fired: dict[str, tuple[str, int]] = {}  # cnt -> (method, basis) when it fired
        self.due: list[str] = []

    def counts(self) -> tuple[dict[str, tuple[int, int]], dict[str, tuple[int, str, int]]]:
        """cnt → (scorable rows, rows with official HOMEPOS), and the calibrations so far.

        Scorable rows (≥ 3 valid items, where HOMEPOS is computed) are what `calibrate_homepos`
        counts against `min_rows`: counting every row fired the job at 2,000 rows with ~1,900
        scorable, it declined (too_few_rows), and the trigger then waited for 4,000 rows.
        Read from the scored table, not the staging view: no cleaning recomputed per poll.
        """
        conn = psycopg2.connect(self.url)
        try:
            with conn.cursor() as cur:
                cur.execute("set statement_timeout = '20s'")
                cur.execute("select to_regclass('intermediate.int_student_indices') is not null")
                rows = {}
                if cur.fetchone()[0]:  # not yet built: nothing scored, nothing to calibrate
                    cur.execute(
                        "select cnt, count(homepos_computed), count(homepos_official)"
                        " from intermediate.int_student_indices group by cnt"
                    )
                    rows = {r[0]: (r[1], r[2]) for r in cur.fetchall() if r[0]}
                cur.execute("select to_regclass('calibration.homepos_params') is not null")
                previous = _previous(conn) if cur.fetchone()[0] else {}
        finally:
            conn.close()
        return rows, previous

    def __call__(self) -> bool:
        rows, previous = self.counts()
        seeded = set(block_countries())
        self.due = []
        for cnt, (n, n_official) in sorted(rows.items()):
            if cnt in seeded:
                continue
            if n_official >= self.min_official:
                method, basis = "official_fit", n_official
            elif n >= self.min_rows:
                method, basis = "mml", n
            else:
                continue
            marks = [m for m in (previous.get(cnt), self.fired.get(cnt)) if m]
            last = [m[-1] for m in marks if m[-2] == method]
            if last and basis < self.growth * max(last):
                continue
            self.fired[cnt] = (method, basis)
            self.due.append(cnt)
        return bool(self.due)


def calibrate_homepos(
    target: config.Settings | str,
    countries: list[str] | None = None,
    min_rows: int = DEFAULT_MIN_ROWS,
    min_official: int = DEFAULT_MIN_OFFICIAL,
    growth: float = DEFAULT_GROWTH,
    refresh: bool = True,
    dbt_dir: Path | None = None,
    progress=None,
) -> CalibrationReport:
    """Calibrate every country that needs a block (or just `countries`); see the module doc.

    `progress(cnt, done, total)`, if given, is called before each country (`done` countries
    of `total` finished).

    Countries named explicitly are calibrated even when they have a seed block (the seed
    still wins in int_homepos_params unless the dbt var `homepos_hidden_blocks` hides it).
    """
    url = target if isinstance(target, str) else target.warehouse_url
    started = time.perf_counter()
    report = CalibrationReport()
    seeded = set(block_countries())
    ensure_calibration_tables(url)  # the job also works before dbt ran
    # One dbt target for the job's two dbt runs (the refresh, the state): the second parses
    # partially.
    scratch = None if dbt_dir else tempfile.TemporaryDirectory(prefix="pulse_calibrate_")
    dbt_dir = Path(scratch.name) if scratch else dbt_dir
    conn = psycopg2.connect(url)
    try:
        previous = _previous(conn)
        with conn.cursor() as cur:  # calibrations an earlier job wrote but did not rescore
            cur.execute("select cnt from calibration.rescore_pending order by cnt")
            pending = [r[0] for r in cur.fetchall()]
        conn.commit()
        data = load_country_data(conn, countries)
        for done, cnt in enumerate(sorted(data)):
            if progress is not None:
                progress(cnt, done, len(data))
            d = data[cnt]
            outcome = CountryOutcome(cnt, "", n_rows=d.n_scorable, n_official=d.n_official)
            report.countries.append(outcome)
            if cnt in seeded and not countries:
                outcome.status = "has_seed_block"
                continue
            prev = previous.get(cnt)
            method = "official_fit" if d.n_official >= min_official else "mml"
            n_basis = d.n_official if method == "official_fit" else d.n_scorable
            if prev and prev[1] == method and n_basis < growth * prev[2]:
                outcome.status, outcome.method, outcome.version = "up_to_date", prev[1], prev[0]
                continue
            t0 = time.perf_counter()
            try:
                fit = calibrate_country(d, min_rows, min_official)
            except Exception as exc:  # one country's failure must not stop the others
                outcome.status, outcome.message = "failed", f"{type(exc).__name__}: {exc}"
                continue
            outcome.seconds = round(time.perf_counter() - t0, 3)
            if fit is None:
                outcome.status = "too_few_rows"
                outcome.message = f"{d.n_scorable} < {min_rows} rows, {d.n_official} official"
                continue
            version = (prev[0] if prev else 0) + 1
            write_block(conn, cnt, fit, version)
            conn.commit()
            outcome.status, outcome.method, outcome.version = "calibrated", fit.method, version
            outcome.message = fit.message
            if d.n_official:
                has = ~np.isnan(d.official)
                ours = wle(d.scores[has], fit.params)
                outcome.within_001_official = float(np.mean(np.abs(ours - d.official[has]) <= 0.01))
        if refresh and (pending or any(c.status == "calibrated" for c in report.countries)):
            refresh_params_model(url, dbt_dir)
            report.refreshed = True
            # Rows scored before the new blocks are scored again, as a rebuild would score them
            # (with those of a calibration whose job died before its rescore).
            new_blocks = [
                c.cnt for c in report.countries if c.status == "calibrated" and c.cnt not in seeded
            ]
            again = sorted(set(new_blocks) | set(pending))
            report.rescored = rescore_countries(url, again, progress=lambda _: None)
            prune_cache(conn)
            conn.commit()
        if refresh:
            # The rescored countries' state now (also one a killed job left queued): the loop's
            # dbt ticks only come with new rows, and until then the state is the old blocks'.
            report.folded = fold_rescored_state(url, dbt_dir)
    finally:
        conn.close()
        if scratch is not None:
            scratch.cleanup()
    report.seconds = round(time.perf_counter() - started, 3)
    return report
