"""`pulse bench endpoints`: Forage's five URLs at ~600 requests/s, on the system as it ships.

100 keep-alive connections, each a Forage tab polling one of the five URLs every ~166 ms
(wrk, a C load generator on this machine: a Python poller at this rate saturates its own
core and measures itself). Without --url it starts `pulse up` as `make run` does
(src/pisa_pulse/bench/system.py), writes 20 submissions/s into the sources so publications land
several times a second, measures, then waits for the pipeline's first slow job (the dbt
build with tests, two minutes after start) and measures again while it runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import re
import shutil
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

from pisa_pulse.bench import common

HELP = "Forage endpoints on `pulse up`: p50/p99 latency and errors at ~600 requests/s"
TARGET_P99_MS = {"publishing": 10.0, "slow_job": 50.0}
PATHS = (
    "/forage/submissions",
    "/forage/submissions_over_time",
    "/forage/learning_hours_per_week?countries=FRA,ITA,MEX,GBR,ESP",
    "/forage/escs",
    "/forage/early_education_and_belonging",
)
WRK_SCRIPT = """-- written by pulse bench endpoints: each connection polls one URL every DELAY ms
local paths = @PATHS@
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i % #paths) + 1], {{["Origin"] = "https://forage.example"}})
end
delay = function() return {delay_ms} end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK requests %d errors %d p50_ms %.3f p99_ms %.3f max_ms %.3f\\n",
    summary.requests, e.status + e.connect + e.read + e.write + e.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", help="measure this running server instead of starting `pulse up`")
    p.add_argument("--pollers", type=int, default=100, help="connections (Forage tabs)")
    p.add_argument("--rate", type=float, default=600, help="target requests/s in total")
    p.add_argument("--seconds", type=float, default=20, help="measured duration per phase")
    p.add_argument("--write-rate", type=float, default=20, help="submissions/s written")
    p.add_argument("--no-slow-job", action="store_true", help="skip the slow-job phase")
    p.add_argument("--name", default="endpoints", help="result file (docs/bench/<name>.json)")


def wrk(url: str, pollers: int, rate: float, seconds: float) -> dict:
    """One wrk run; its latency percentiles, request and error counts."""
    if not shutil.which("wrk"):
        raise SystemExit("pulse bench endpoints needs wrk: apt-get install wrk")
    paths = "{" + ", ".join(json.dumps(p) for p in PATHS) + "}"
    script = WRK_SCRIPT.format(delay_ms=round(1000 * pollers / rate)).replace("@PATHS@", paths)
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as f:
        f.write(script)
        f.flush()
        argv = ["wrk", "-t2", f"-c{pollers}", f"-d{seconds:g}s", "-s", f.name, url]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    m = re.search(
        r"WRK requests (\d+) errors (\d+) p50_ms (\S+) p99_ms (\S+) max_ms (\S+)", out.stdout
    )
    if not m:
        raise RuntimeError(f"wrk printed no result:\n{out.stdout}\n{out.stderr}")
    requests, errors = int(m[1]), int(m[2])
    return {
        "requests": requests,
        "throughput_rps": round(requests / seconds, 1),
        "errors": errors,
        "latency_ms": {"p50": float(m[3]), "p99": float(m[4]), "max": float(m[5])},
    }


def run(args: argparse.Namespace) -> int:
    if args.url:
        phases = {"given_url": wrk(args.url.rstrip("/"), args.pollers, args.rate, args.seconds)}
        return _report(args, phases, "a running server (--url)")
    from pisa_pulse.bench.freshness import stop_cleanly_on_sigterm
    from pisa_pulse.bench.system import System, load_writer, wait_until

    stop_cleanly_on_sigterm()
    phases = {}
    with System() as system:
        writer = load_writer(system.settings, args.write_rate, system.source_counts())
        writer.start()
        try:
            time.sleep(5)
            phases["publishing"] = _phase(system, args)
            if not args.no_slow_job:
                print("waiting for the pipeline's first slow job …", flush=True)
                wait_until(lambda: _running_job(system), 900, "a slow job", interval=0.5)
                phases["slow_job"] = _phase(system, args)
                phases["slow_job"]["job"] = _running_job(system)
        finally:
            writer.stop()
    return _report(args, phases, f"pulse up (make run), {args.write_rate:g} submissions/s")


def _running_job(system) -> str | None:
    now = time.time()
    return next((j for j, _, end in system.job_intervals(now - 1) if end >= now - 0.5), None)


def _phase(system, args) -> dict:
    since = time.time()
    result = wrk(system.url, args.pollers, args.rate, args.seconds)
    ticks = [e for e in system.events(since) if e.get("event") == "tick" and e.get("publish_s")]
    result["publications_per_s"] = round(len(ticks) / args.seconds, 1)
    result["jobs"] = sorted({j for j, _, _ in system.job_intervals(since)})
    return result


def _report(args, phases: dict, system: str) -> int:
    ok = True
    for name, r in phases.items():
        target = TARGET_P99_MS.get(name, TARGET_P99_MS["publishing"])
        r["target_p99_ms"] = target
        r["met_target"] = (
            r["errors"] == 0 and r["requests"] > 0 and r["latency_ms"]["p99"] <= target
        )
        ok &= r["met_target"]
        lat = r["latency_ms"]
        print(
            f"{name:>10}: {r['throughput_rps']:,.0f} req/s, p50 {lat['p50']:.2f} ms, "
            f"p99 {lat['p99']:.2f} ms, max {lat['max']:.2f} ms, {r['errors']} errors, "
            f"{r.get('publications_per_s', '-')} publications/s, jobs {r.get('jobs') or '-'} "
            f"(target p99 ≤ {target:g} ms)",
            flush=True,
        )
    out = {
        "system": system,
        "pollers": args.pollers,
        "target_rps": args.rate,
        "seconds": args.seconds,
        "phases": phases,
        "met_target": bool(ok),
    }
    print(f"written to {common.save(args.name, out)}")
    return 0 if ok else 1


# -- a sample SQLite file (tests serve it without a warehouse) -------------------------------


def write_sample(path: Path, countries: int = 80, seed: int = 1) -> None:
    """The published tables (publisher's column types) with random values."""
    rnd = random.Random(seed)
    codes = sorted({"".join(rnd.choices("ABCDEFGHIJKLMNOPQRSTUVWXYZ", k=3)) for _ in range(200)})
    codes = sorted(set(codes[: countries - 5]) | {"FRA", "ITA", "MEX", "GBR", "ESP"})
    now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    db = sqlite3.connect(path)
    db.execute("pragma journal_mode=wal")
    db.executescript(
        """
        create table forage_submissions (count INTEGER);
        create table forage_submissions_over_time (
            granularity TEXT, bucket_start TEXT, label TEXT, submissions INTEGER);
        create table forage_learning_hours (
            country TEXT, hours INTEGER, tmins_mean REAL, n INTEGER, weighted INTEGER);
        create table forage_escs (country TEXT, value REAL, n INTEGER, weighted INTEGER);
        create table forage_early_education_belonging (
            country TEXT, durecec_mean REAL, belong_mean REAL, submissions INTEGER,
            weighted INTEGER);
        """
    )
    n = {c: rnd.randint(100, 5000) for c in codes}
    db.execute("insert into forage_submissions values (?)", (sum(n.values()),))
    for gran, step, count in (("hour", 3600, 24), ("minute", 60, 60)):
        for i in range(count):
            t = now - dt.timedelta(seconds=step * (count - 1 - i))
            row = (gran, t.isoformat(), t.strftime("%H:%M"), rnd.randint(0, 500))
            db.execute("insert into forage_submissions_over_time values (?, ?, ?, ?)", row)
    for c in codes:
        tmins = rnd.uniform(1200, 2000)
        db.execute(
            "insert into forage_learning_hours values (?, ?, ?, ?, 1)",
            (c, round(tmins / 60), tmins, n[c]),
        )
        db.execute("insert into forage_escs values (?, ?, ?, 1)", (c, rnd.gauss(-0.3, 0.6), n[c]))
        db.execute(
            "insert into forage_early_education_belonging values (?, ?, ?, ?, 1)",
            (c, rnd.uniform(1, 4), rnd.gauss(0, 0.3), n[c]),
        )
    db.commit()
    db.close()
