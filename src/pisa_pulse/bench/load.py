"""The loader: backfill rows/s from 80 full-width sources, and steady-state lag p50/p95.

Backfill: the simulator COPYs N full-width rows (all 1,118 columns) into 80 country
databases; a fresh warehouse database is then filled by an in-process `Loader` ticking
as fast as it can, until the warehouse holds every row. rows/s = rows / elapsed.

Lag: a writer process inserts pre-built full-width rows at a fixed rate into random
sources (small transactions, one per country and 20 ms slot) and records when each
commit returned. The loader ticks every 100 ms in this process and records when each
tick's warehouse commit returned and its `_load_seq` range. Lag of a row = warehouse
commit time - source commit time (same clock), over every row written in the window.

Without PULSE_WAREHOUSE_URL / PULSE_SOURCE_URL_TEMPLATE it starts its own PostgreSQL in
a temporary folder and removes it afterwards.
"""

from __future__ import annotations

import argparse
import bisect
import json
import multiprocessing
import os
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import psycopg2

from pisa_pulse.bench import common
from pisa_pulse.core import codebook, config

HELP = "loader: backfill rows/s (80 sources, full-width rows), lag p50/p95 at 100 and 1,000/s"
TARGET_BACKFILL_ROWS_S = 20_000
TARGET_LAG_P95_MS = 300.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="a short run (fewer rows and seconds)")
    p.add_argument("--sources", type=int, default=80, help="number of source databases")
    p.add_argument("--rows", type=int, help="backfill rows (default 100,000; quick 20,000)")
    p.add_argument("--runs", type=int, help="backfill runs (default 3; quick 1)")
    p.add_argument("--rates", default="100,1000", help="submissions/s for the lag runs")
    p.add_argument("--seconds", type=float, help="measured seconds per rate (default 30; quick 8)")
    p.add_argument("--interval", type=float, default=0.1, help="loader poll interval (s)")


# -- the world ------------------------------------------------------------------------------


class World:
    """Source databases and fresh warehouse databases on a server (ours unless configured)."""

    def __init__(self, tmp: Path):
        self.cluster = None
        wh = os.environ.get("PULSE_WAREHOUSE_URL")
        template = os.environ.get("PULSE_SOURCE_URL_TEMPLATE")
        if wh and template:
            self.server = wh.rsplit("/", 1)[0]
            self.template = template.replace("{country}", "bench_{country}")
        else:
            from pisa_pulse.core.cluster import Cluster, find_pg_bin, free_port

            self.cluster = Cluster(data_dir=tmp / "pg", port=free_port(), bin_dir=find_pg_bin())
            self.cluster.start()
            self.server = f"postgresql://postgres@127.0.0.1:{self.cluster.port}"
            self.template = self.server + "/bench_{country}"
        self.home = tmp

    def settings(self, warehouse_db: str, countries: list[str]) -> config.Settings:
        return config.Settings(
            home=self.home,
            warehouse_url=f"{self.server}/{warehouse_db}",
            source_url_template=self.template,
            sources=countries,
        )

    def fresh_database(self, name: str) -> None:
        conn = psycopg2.connect(f"{self.server}/postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'drop database if exists "{name}" with (force)')
            cur.execute(f'create database "{name}"')
        conn.close()

    def close(self, settings: config.Settings | None) -> None:
        if self.cluster is not None:
            self.cluster.destroy()
            shutil.rmtree(self.home, ignore_errors=True)
        elif settings is not None:
            from pisa_pulse.sim import api as sim

            sim.drop_databases(settings, settings.sources)


# -- backfill -------------------------------------------------------------------------------


def backfill_run(world: World, countries: list[str], rows: int, run: int) -> dict:
    from pisa_pulse.loader import Loader

    name = f"bench_load_wh_{run}"
    world.fresh_database(name)
    settings = world.settings(name, countries)
    started = time.monotonic()
    loaded, ticks = 0, 0
    with Loader(settings, read_timeout=30.0) as loader:
        while loaded < rows:
            result = loader.tick()
            loaded += result.total_rows
            ticks += 1
            if ticks > 10_000:
                raise RuntimeError(f"backfill stuck at {loaded} of {rows} rows")
    elapsed = time.monotonic() - started
    return {"rows": loaded, "seconds": round(elapsed, 3), "rows_per_s": round(loaded / elapsed)}


# -- steady-state lag -----------------------------------------------------------------------


def _writer(template: str, countries: list[str], rate: float, seconds: float, out: str) -> None:
    """Insert pre-built full-width rows at `rate`/s; write (cnt, id, commit time) to `out`."""
    from pisa_pulse.sim import rows as simrows
    from pisa_pulse.sim.messiness import Messifier

    rng = random.Random(1)
    messifier = Messifier(0.0, rng)
    bodies = {
        c: ["\t".join(simrows.submission(c, rng, messifier)) for _ in range(20)] for c in countries
    }
    conns = {c: psycopg2.connect(template.format(country=c.lower())) for c in countries}
    next_id = 10**12 + int(time.time() * 1000) % 10**9 * 1000
    records = []
    start = time.monotonic()
    done = 0
    while True:
        elapsed = time.monotonic() - start
        if elapsed >= seconds:
            break
        due = int(rate * elapsed) - done
        if due > 0:
            per_country: dict[str, list[int]] = {}
            for _ in range(due):
                next_id += rng.randrange(1, 1000)  # ids neither dense nor in commit order
                per_country.setdefault(rng.choice(countries), []).append(next_id)
            for cnt, ids in per_country.items():
                conn = conns[cnt]
                with conn.cursor() as cur:
                    simrows.copy_rows(cur, [(i, rng.choice(bodies[cnt])) for i in ids])
                conn.commit()
                t = time.time()
                records.extend((cnt, i, t) for i in ids)
            done += due
        time.sleep(0.02)
    for conn in conns.values():
        conn.close()
    Path(out).write_text(json.dumps(records))


def lag_run(world: World, countries: list[str], rate: float, seconds: float, interval: float):
    from pisa_pulse.loader import Loader

    name = f"bench_load_lag_{int(rate)}"
    world.fresh_database(name)
    settings = world.settings(name, countries)
    out = Path(tempfile.mktemp(suffix=".json"))
    ticks: list[tuple[int, int, float]] = []  # (first _load_seq, last, commit time)
    tick_s: list[float] = []
    with Loader(settings) as loader:
        while loader.tick().total_rows or not ticks and not tick_s:  # catch up first
            tick_s.append(0.0)
        tick_s.clear()
        ctx = multiprocessing.get_context("spawn")
        writer = ctx.Process(
            target=_writer, args=(world.template, countries, rate, seconds, str(out))
        )
        writer.start()
        while writer.is_alive():
            started = time.monotonic()
            r = loader.tick()
            tick_s.append(r.total_s)
            if r.load_seq:
                ticks.append((*r.load_seq, r.committed_at))
            time.sleep(max(0.0, interval - (time.monotonic() - started)))
        writer.join()
        for _ in range(30):  # the last rows
            r = loader.tick()
            if r.load_seq:
                ticks.append((*r.load_seq, r.committed_at))
            time.sleep(interval)
    written = json.loads(out.read_text())
    out.unlink()
    conn = psycopg2.connect(settings.warehouse_url)
    with conn.cursor() as cur:
        cur.execute("select cnt, id, _load_seq from raw.responses where id >= 1000000000000")
        seq = {(c, i): s for c, i, s in cur.fetchall()}
    conn.close()
    starts = [t[0] for t in ticks]
    lags, missing = [], 0
    for cnt, i, committed in written:
        s = seq.get((cnt, i))
        if s is None:
            missing += 1
            continue
        k = bisect.bisect_right(starts, s) - 1
        lags.append((ticks[k][2] - committed) * 1000)
    summary = common.summary(lags) if lags else {}
    return {
        "rate": rate,
        "rows_written": len(written),
        "rows_missing": missing,
        "lag_ms": {k: round(v, 1) if isinstance(v, float) else v for k, v in summary.items()},
        "tick_ms_p50": round(statistics.median(tick_s) * 1000, 1) if tick_s else None,
    }


# -- entry point ----------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    from pisa_pulse.sim import api as sim

    quick = args.quick
    rows = args.rows or (20_000 if quick else 100_000)
    runs = args.runs if args.runs is not None else (1 if quick else 3)
    seconds = args.seconds or (8.0 if quick else 30.0)
    rates = [float(r) for r in args.rates.split(",") if r]
    countries = list(codebook.countries())[: args.sources]
    load_start = round(os.getloadavg()[0], 2)
    tmp = Path(tempfile.mkdtemp(prefix="pulse_bench_load_"))
    world = World(tmp)
    settings = world.settings("unused", countries)
    try:
        print(f"setting up {len(countries)} sources with {rows:,} full-width rows …", flush=True)
        sim.setup_databases(settings, countries)
        sim.empty(settings)
        t0 = time.monotonic()
        sim.backfill(settings, rows, countries=countries, seed=1, even=True)
        print(f"  (simulator backfill took {time.monotonic() - t0:.1f} s)", flush=True)
        backfills = []
        for i in range(runs):
            r = backfill_run(world, countries, rows, i)
            print(
                f"backfill run {i + 1}: {r['rows']:,} rows in {r['seconds']} s = "
                f"{r['rows_per_s']:,} rows/s",
                flush=True,
            )
            backfills.append(r)
        lag = []
        for rate in rates:
            r = lag_run(world, countries, rate, seconds, args.interval)
            print(
                f"lag at {rate:g}/s: {r['lag_ms']} (missing {r['rows_missing']}, "
                f"tick p50 {r['tick_ms_p50']} ms)",
                flush=True,
            )
            lag.append(r)
    finally:
        world.close(settings if world.cluster is None else None)
    median_rate = statistics.median(r["rows_per_s"] for r in backfills) if backfills else None
    result = {
        "quick": quick,
        "sources": len(countries),
        "backfill_rows": rows,
        "backfill_runs": backfills,
        "backfill_rows_per_s_median": median_rate,
        "backfill_target_rows_per_s": TARGET_BACKFILL_ROWS_S,
        "lag_runs": lag,
        "lag_target_p95_ms_at_1000": TARGET_LAG_P95_MS,
        "poll_interval_s": args.interval,
        # Other work on the machine skews every figure: record how busy it was.
        "load_average_1m": {"start": load_start, "end": round(os.getloadavg()[0], 2)},
    }
    path = common.save("load", result)
    if median_rate is not None:
        print(f"\nbackfill median {median_rate:,.0f} rows/s (target ≥ {TARGET_BACKFILL_ROWS_S:,})")
    for r in lag:
        print(
            f"lag at {r['rate']:g}/s: p50 {r['lag_ms'].get('p50')} ms, "
            f"p95 {r['lag_ms'].get('p95')} ms (target p95 ≤ {TARGET_LAG_P95_MS:g} ms at 1,000/s)"
        )
    print(f"written to {path}")
    missing = sum(r["rows_missing"] for r in lag)
    return 1 if missing else 0
