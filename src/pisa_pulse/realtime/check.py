"""`pulse check`: do Forage's numbers equal a full recomputation over the application DBs?

How the recomputation is made, and why:
  1. Every row now in every application database is copied into a *scratch* warehouse (a
     fresh database next to the real one) in one bulk pass, and the whole dbt project is
     built there from nothing (`dbt seed` + `dbt run --full-refresh`, in a subprocess), with
     the parameters in force: the seeds, and the HOMEPOS calibrations copied over.
     No incremental state, no tail, no tombstones, no restarts: the batch answer.
  2. The scratch marts are rendered with the same Datasette plugin code into Forage's five
     JSON answers, and compared with what is being served (the HTTP endpoints when a URL is
     given, else the published SQLite file).
  3. Independently of dbt and the loader, the submission count and the per-country counts
     are checked against `count(*)` in each application database.

So the check proves the real-time path (exactly-once loading across faults, additive state
+ tail, publication) equals a from-scratch computation. It does not re-derive the OECD
index formulas a second way: those are checked against the OECD's official values by the
indices tests.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import psycopg2

from pisa_pulse.core import config
from pisa_pulse.core.dbt import run_dbt


@dataclasses.dataclass
class CheckResult:
    ok: bool
    problems: list[str]
    source_count: int
    served_count: int | None
    seconds: float
    charts: dict[str, bool]

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


# -- sources -----------------------------------------------------------------------------------
def source_counts(settings) -> dict[str, int]:
    """count(*) per existing application database (upper-case country codes)."""
    from pisa_pulse.sim.api import count_rows

    return {c.upper(): n for c, n in count_rows(settings, settings.sources).items()}


# -- what is served ----------------------------------------------------------------------------
def served_answers(url: str | None, sqlite_path: Path) -> dict[str, dict]:
    """Forage's five answers as served: over HTTP if `url`, else rendered from the SQLite file."""
    if url:
        answers = {}
        from pisa_pulse.serving.forage_plugin import CHARTS

        for chart in CHARTS:
            with urllib.request.urlopen(f"{url.rstrip('/')}/forage/{chart}", timeout=10) as r:
                answers[chart] = json.load(r)
            if chart == "submissions_over_time":
                with urllib.request.urlopen(
                    f"{url.rstrip('/')}/forage/{chart}?granularity=minute", timeout=10
                ) as r:
                    answers["submissions_over_time:minute"] = json.load(r)
        return answers
    return render_sqlite(sqlite_path)


def render_sqlite(sqlite_path: Path) -> dict[str, dict]:
    # The charts and the tables they read are the plugin's (dbt's manifest, serving/catalog.py):
    # what is served is rendered by the serving code itself; the independent oracle
    # (independent.py) keeps its own list of the five charts.
    from pisa_pulse.serving.forage_plugin import CHARTS, answer
    from pisa_pulse.serving.reader import PublishedTables

    tables = PublishedTables(sqlite_path)
    try:
        tables.refresh()
        answers = {c: answer(c, tables.rows(t), {}) for c, t in CHARTS.items()}
        answers["submissions_over_time:minute"] = answer(
            "submissions_over_time",
            tables.rows(CHARTS["submissions_over_time"]),
            {"granularity": ["minute"]},
        )
        return answers
    finally:
        tables.close()


# -- the recomputation -------------------------------------------------------------------------
def scratch_url(warehouse_url: str) -> str:
    u = urlparse(warehouse_url)
    return u._replace(path=f"{u.path.rstrip('/')}_recompute").geturl()


def _recreate_database(url: str) -> None:
    u = urlparse(url)
    name = u.path.lstrip("/")
    admin = psycopg2.connect(u._replace(path="/postgres").geturl())
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'drop database if exists "{name}" with (force)')
        cur.execute(f'create database "{name}"')
    admin.close()


def _drop_database(url: str, attempts: int = 10) -> None:
    """Drop the scratch database, retrying while the server restarts (a crashed backend
    makes PostgreSQL reset every session; seen once under heavy load in the fault tests)."""
    u = urlparse(url)
    for attempt in range(attempts):
        try:
            admin = psycopg2.connect(u._replace(path="/postgres").geturl())
            try:
                admin.autocommit = True
                with admin.cursor() as cur:
                    cur.execute(f'drop database if exists "{u.path.lstrip("/")}" with (force)')
                return
            finally:
                admin.close()
        except psycopg2.OperationalError:
            if attempt == attempts - 1:
                raise
            time.sleep(3)


def recompute(settings, work_dir: Path, expected_rows: int, keep: bool = False) -> Path:
    """Build the whole project from nothing over a bulk copy of the sources; returns a SQLite
    file holding the resulting marts (written by the real publisher)."""
    from pisa_pulse.loader.engine import Loader
    from pisa_pulse.serving.publisher import Publisher

    url = scratch_url(settings.warehouse_url)
    _recreate_database(url)
    try:
        scratch = dataclasses.replace(settings, warehouse_url=url)
        with Loader(scratch, reconcile_interval=3600, read_timeout=60) as loader:
            deadline = time.monotonic() + 120
            # Pages until every source is drained (the loader reads up to a safe horizon).
            while _raw_rows(url) < expected_rows and time.monotonic() < deadline:
                if not loader.tick().total_rows:
                    time.sleep(0.2)
        copy_calibrations(settings.warehouse_url, url)
        for args in (["seed"], ["run", "--full-refresh"]):
            run_dbt(args, url, target_path=work_dir / "target", log_path=work_dir / "logs")
        sqlite_path = work_dir / "recomputed.db"
        with Publisher(url, sqlite_path) as publisher:
            publisher.publish_once()
        return sqlite_path
    finally:
        if not keep:
            _drop_database(url)


def copy_calibrations(source_url: str, scratch_url: str) -> int:
    """Copy the HOMEPOS calibrations in force into the scratch warehouse; returns the rows.

    They are parameters, like the seeds: the recomputation scores every row with the blocks
    the served warehouse uses now (a calibration is a slow job of its own, not part of a
    rebuild; src/pisa_pulse/indices/rescore.py rescored the rows scored before it)."""
    from pisa_pulse.indices.calibration_tables import ensure_calibration_tables

    text = io.StringIO()
    src = psycopg2.connect(source_url)
    try:
        with src.cursor() as cur:
            cur.execute("select to_regclass('calibration.homepos_params') is not null")
            if not cur.fetchone()[0]:
                return 0
            cur.copy_expert("copy calibration.homepos_params to stdout", text)
    finally:
        src.close()
    text.seek(0)
    ensure_calibration_tables(scratch_url)
    dst = psycopg2.connect(scratch_url)
    try:
        with dst, dst.cursor() as cur:
            cur.copy_expert("copy calibration.homepos_params from stdin", text)
            return cur.rowcount
    finally:
        dst.close()


CALIBRATION_ATTEMPTS = 3


def calibration_state(warehouse_url: str) -> tuple:
    """What the served numbers depend on besides the rows: the blocks in force (versions per
    country) and the countries still being rescored or whose state is not yet recomputed."""
    conn = psycopg2.connect(warehouse_url)
    try:
        with conn.cursor() as cur:
            cur.execute("select to_regclass('calibration.homepos_params') is not null")
            if not cur.fetchone()[0]:
                return ()
            cur.execute(
                "select cnt, max(version) from calibration.homepos_params group by 1 order by 1"
            )
            versions = tuple(cur.fetchall())
            unsettled = []
            for table in ("calibration.rescore_pending", "calibration.rescored_countries"):
                cur.execute(f"select to_regclass('{table}') is not null")
                if cur.fetchone()[0]:
                    cur.execute(f"select distinct cnt from {table} order by 1")
                    unsettled += [r[0] for r in cur.fetchall()]
            return versions, tuple(sorted(set(unsettled)))
    finally:
        conn.close()


def wait_calibrations_settled(warehouse_url: str, timeout: float) -> tuple:
    """The calibration state once no country is being rescored or refolded (or at timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        state = calibration_state(warehouse_url)
        if not state or not state[1] or time.monotonic() >= deadline:
            return state
        time.sleep(0.5)


def _raw_rows(url: str) -> int:
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("select count(*) from raw.responses")
            return cur.fetchone()[0]
    except psycopg2.errors.UndefinedTable:
        return 0
    finally:
        conn.close()


# -- comparing ---------------------------------------------------------------------------------
def _same(a, b, tol: float = 1e-9) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        return math.isclose(float(a), float(b), rel_tol=tol, abs_tol=tol)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k], tol) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y, tol) for x, y in zip(a, b, strict=True))
    return a == b


def _over_time_problems(chart: str, served: dict, expected: dict) -> list[str]:
    """Time series: both are 'the last N buckets until now', computed moments apart, so
    compare the buckets both contain; they must agree on every one of them."""
    got = {p["x"]: p["y"] for p in served["datasets"][0]["data"]}
    want = {p["x"]: p["y"] for p in expected["datasets"][0]["data"]}
    common = got.keys() & want.keys()
    problems = []
    if len(common) < max(1, len(want) - 2):
        problems.append(f"{chart}: only {len(common)} of {len(want)} buckets in common")
    wrong = sorted(x for x in common if got[x] != want[x])
    if wrong:
        problems.append(
            f"{chart}: {len(wrong)} buckets differ, e.g. {wrong[0]}: "
            f"served {got[wrong[0]]}, recomputed {want[wrong[0]]}"
        )
    return problems


def compare(served: dict[str, dict], expected: dict[str, dict]) -> dict[str, list[str]]:
    problems: dict[str, list[str]] = {}
    for chart, want in expected.items():
        got = served.get(chart)
        if got is None:
            problems[chart] = [f"{chart}: not served"]
        elif chart.startswith("submissions_over_time"):
            problems[chart] = _over_time_problems(chart, got, want)
        elif not _same(got, want):
            problems[chart] = [f"{chart}: served {_short(got)} but recomputed {_short(want)}"]
        else:
            problems[chart] = []
    return problems


def _short(value) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) < 400 else text[:400] + "…"


def wait_for_count(settings, expected: int, served, timeout: float) -> int | None:
    """Wait until the served count equals `expected` (the pipeline caught up) or time out."""
    deadline = time.monotonic() + timeout
    count = None
    while True:
        try:
            count = served()["submissions"]["count"]
        except Exception:  # not published yet, server restarting…
            count = None
        if count == expected or time.monotonic() >= deadline:
            return count
        time.sleep(0.2)


def check(
    settings,
    *,
    url: str | None = None,
    sqlite_path: Path | None = None,
    wait: float = 30.0,
    work_dir: Path | None = None,
) -> CheckResult:
    """Compare what is served with a full recomputation (call it once the load has stopped)."""
    started = time.monotonic()
    sqlite_path = Path(sqlite_path or config.home() / "pulse.db")
    counts = source_counts(settings)
    total = sum(counts.values())

    def served() -> dict[str, dict]:
        return served_answers(url, sqlite_path)

    served_count = wait_for_count(settings, total, served, wait)
    problems: list[str] = []
    if served_count != total:
        problems.append(f"served count {served_count} != {total} rows in the sources")
    # A HOMEPOS calibration that lands between copying the blocks and reading the served
    # answers changes what is served but not the recomputation (seen after a 1,000/s load,
    # whose growth triggers calibrations): compare only over a stretch with none landing.
    for attempt in range(1, CALIBRATION_ATTEMPTS + 1):
        calibrations = wait_calibrations_settled(settings.warehouse_url, wait)
        with tempfile.TemporaryDirectory(prefix="pulse-check-", dir=work_dir) as tmp:
            recomputed = recompute(settings, Path(tmp), total)
            expected = render_sqlite(recomputed)
            per_country = _recomputed_submissions(recomputed)
        answers = served()
        if calibration_state(settings.warehouse_url) == calibrations:
            break
        if attempt == CALIBRATION_ATTEMPTS:
            problems.append(f"a HOMEPOS calibration landed during each of {attempt} recomputations")
    by_chart = compare(answers, expected)
    for chart_problems in by_chart.values():
        problems.extend(chart_problems)
    if expected["submissions"]["count"] != total:
        problems.append(
            f"recomputed count {expected['submissions']['count']} != {total} source rows"
        )
    for cnt, n in counts.items():
        if n and per_country.get(cnt) != n:
            problems.append(f"{cnt}: {n} source rows, recomputed {per_country.get(cnt)}")
    return CheckResult(
        ok=not problems,
        problems=problems,
        source_count=total,
        served_count=served_count,
        seconds=time.monotonic() - started,
        charts={chart: not p for chart, p in by_chart.items()},
    )


def _recomputed_submissions(sqlite_path: Path) -> dict[str, int]:
    import sqlite3

    db = sqlite3.connect(sqlite_path)
    try:
        rows = db.execute(
            "select country, submissions from forage_early_education_belonging"
        ).fetchall()
    finally:
        db.close()
    return {c: n for c, n in rows}
