"""The simulator: backfill rate (rows/s, COPY) and the stream rate achieved against a target.

Runs against a private PostgreSQL 15 cluster on a free port (started and stopped here),
or against the configured source server with --configured (databases `bench_<country>`
are created there and dropped afterwards). The stream's rate is measured from the
databases' row counts over the measured window, not from the stream's own counters.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

import psutil

from pisa_pulse.bench import common
from pisa_pulse.core import codebook, config

HELP = "simulator: backfill rows/s (COPY) and stream rate achieved (target >= 2,000/s)"
TARGET_STREAM_RATE = 2000.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backfill", type=int, default=20000, help="rows to backfill")
    p.add_argument("--rates", default="2000", help="comma list of stream rates to try (rows/s)")
    p.add_argument("--seconds", type=float, default=15, help="measured seconds per rate")
    p.add_argument("--warmup", type=float, default=3, help="seconds before measuring")
    p.add_argument("--countries", type=int, default=82, help="how many countries (codebook order)")
    p.add_argument("--writers", type=int, default=4)
    p.add_argument("--configured", action="store_true", help="use the configured source server")


def _settings(base_url: str, home: Path) -> config.Settings:
    return config.Settings(
        home=home,
        warehouse_url=f"{base_url}/bench_warehouse",
        source_url_template=f"{base_url}/bench_{{country}}",
    )


def _server_cpu(server_pid: int | None) -> float:
    """CPU seconds of the PostgreSQL server and its backends (0 when not ours to see)."""
    if not server_pid:
        return 0.0
    try:
        root = psutil.Process(server_pid)
        total = 0.0
        t = root.cpu_times()  # children_*: backends that have exited (reaped by the postmaster)
        total = t.user + t.system + t.children_user + t.children_system
        for proc in root.children():
            try:
                t = proc.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
        return total
    except psutil.NoSuchProcess:
        return 0.0


def _own_cpu() -> float:
    t = psutil.Process(os.getpid()).cpu_times()
    return t.user + t.system


def _total(api, settings, codes) -> int:
    return sum(api.count_rows(settings, codes).values())


def _measure_stream(settings, api, codes, rate, args, server_pid) -> dict:
    stream = api.Stream(settings, rate, countries=codes, writers=args.writers, seed=1)
    stream.start()
    try:
        time.sleep(args.warmup)
        # the stream's own commit counter: counting 82 big tables would load the server
        c0, t0 = stream.stats()["rows_committed"], time.monotonic()
        own0, srv0 = _own_cpu(), _server_cpu(server_pid)
        time.sleep(args.seconds)
        c1, t1 = stream.stats()["rows_committed"], time.monotonic()
        own1, srv1 = _own_cpu(), _server_cpu(server_pid)
        stats = stream.stats()
    finally:
        stream.stop()
    rows = max(1, c1 - c0)
    cpu = own1 - own0 + srv1 - srv0
    return {
        "target_rate": rate,
        "achieved_rate": round((c1 - c0) / (t1 - t0), 1),
        # warm-up included: the window above can include catching up on a start-up backlog
        "achieved_rate_whole_run": round(stats["rows_committed"] / stats["uptime_s"], 1),
        "stream_cpu_cores": round((own1 - own0) / (t1 - t0), 2),
        "server_cpu_cores": round((srv1 - srv0) / (t1 - t0), 2),
        # CPU cost per row, simulator + server: the rate 2 idle cores would sustain
        "cpu_ms_per_row": round(cpu / rows * 1000, 3),
        "capacity_2_cores_rows_per_s": round(2 * rows / cpu) if cpu else None,
        "errors": stats["errors"],
        "rows_skipped_behind": stats["rows_skipped_behind"],
        "rows_committed_total": stream.stats()["rows_committed"],
        "transactions_per_s": round(stats["transactions_committed"] / stats["uptime_s"], 1),
    }


def run(args: argparse.Namespace) -> int:
    from pisa_pulse.core.cluster import Cluster, find_pg_bin, free_port
    from pisa_pulse.sim import api

    tmp = Path(tempfile.mkdtemp(prefix="pulse-bench-sim-"))
    cluster = None
    if args.configured:
        u = urlparse(config.load().admin_url)
        base = u._replace(path="").geturl()
    else:
        cluster = Cluster(data_dir=tmp / "pg", port=free_port(), bin_dir=find_pg_bin())
        cluster.start()
        base = f"postgresql://postgres@127.0.0.1:{cluster.port}"
    settings = _settings(base, tmp)
    codes = codebook.countries()[: args.countries]
    result: dict = {
        "countries": len(codes),
        "writers": args.writers,
        # the machine is shared: the load before the run says how much of it we had
        "load_average_1m_before": round(os.getloadavg()[0], 2),
    }
    try:
        t = time.monotonic()
        api.setup_databases(settings, codes)
        result["setup_s"] = round(time.monotonic() - t, 1)

        server_pid = cluster.pid() if cluster is not None else None
        t, own0, srv0 = time.monotonic(), _own_cpu(), _server_cpu(server_pid)
        n = api.backfill(settings, args.backfill, countries=codes, seed=0)
        dt, cpu = time.monotonic() - t, _own_cpu() - own0 + _server_cpu(server_pid) - srv0
        result["backfill_rows"] = n
        result["backfill_rows_per_s"] = round(n / dt)
        result["backfill_cpu_ms_per_row"] = round(cpu / n * 1000, 3)
        result["backfill_capacity_2_cores_rows_per_s"] = round(2 * n / cpu) if cpu else None

        result["stream"] = [
            _measure_stream(settings, api, codes, float(r), args, server_pid)
            for r in args.rates.split(",")
        ]
        # cross-check the stream's counters: every row it counted is in the databases
        streamed = sum(s["rows_committed_total"] for s in result["stream"])
        in_db = _total(api, settings, codes)
        result["db_rows_equal_backfill_plus_committed"] = in_db == n + streamed
    finally:
        api.drop_databases(settings, codes)
        if cluster is not None:
            cluster.stop("immediate")
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"setup of {len(codes)} databases: {result['setup_s']} s")
    print(
        f"backfill: {result['backfill_rows']} rows at {result['backfill_rows_per_s']} rows/s"
        f" ({result['backfill_cpu_ms_per_row']} ms CPU/row,"
        f" {result['backfill_capacity_2_cores_rows_per_s']} rows/s on 2 idle cores)"
    )
    print(
        f"{'target/s':>9} {'achieved/s':>10} {'whole run/s':>11} {'tx/s':>6}"
        f" {'sim cpu':>7} {'pg cpu':>6}"
        f" {'ms cpu/row':>10} {'2-core capacity/s':>17} {'errors':>6}"
    )
    for s in result["stream"]:
        print(
            f"{s['target_rate']:>9.0f} {s['achieved_rate']:>10.1f}"
            f" {s['achieved_rate_whole_run']:>11.1f} {s['transactions_per_s']:>6.1f}"
            f" {s['stream_cpu_cores']:>7.2f} {s['server_cpu_cores']:>6.2f}"
            f" {s['cpu_ms_per_row']:>10.3f} {s['capacity_2_cores_rows_per_s']!s:>17}"
            f" {s['errors']:>6}"
        )
    result["load_average_1m_after"] = round(os.getloadavg()[0], 2)
    print(
        f"load average (1 min) before/after: {result['load_average_1m_before']}"
        f" / {result['load_average_1m_after']}"
    )
    path = common.save("sim", result)
    print(f"saved {path}")
    best = max(s["achieved_rate"] for s in result["stream"])
    return 0 if best >= TARGET_STREAM_RATE * 0.95 else 1
