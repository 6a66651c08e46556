"""`pulse bench dbt_runner`: does a long-lived in-process dbt runner slow down or grow?

Thousands of `DbtSession.tick()`s (one parse, `dbtRunner(manifest=…)` each tick) on a small
incremental project, with a few new rows per tick: the tick time and the process RSS per
window of ticks. `--without-fix` leaves dbt-adapters#2136 in place (a behavior flag is
appended to a module-level list per invocation) to show what the workaround removes.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import psutil
import psycopg2

from pisa_pulse.bench.common import RESULTS_DIR, save

HELP = "in-process dbt: tick time and RSS over thousands of ticks (no growth)"
IN_ALL = False

STATE_SQL = """
{{ config(materialized='incremental', tags=['realtime']) }}
select cnt, count(*) as n, sum(x) as sx, max(_load_seq) as hwm
from {{ source('raw', 'events') }}
{% if is_incremental() %}
where _load_seq > (select coalesce(max(hwm), 0) from {{ this }})
{% endif %}
group by cnt
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ticks", type=int, default=2000)
    p.add_argument("--window", type=int, default=100)
    p.add_argument("--without-fix", action="store_true", help="leave dbt-adapters#2136 in")
    p.add_argument("--quick", action="store_true", help="300 ticks")


def _project(root: Path) -> Path:
    project = root / "project"
    (project / "models").mkdir(parents=True)
    (project / "dbt_project.yml").write_text(
        'name: runner_bench\nversion: "0.1.0"\nconfig-version: 2\nprofile: pisa_pulse\n'
        'model-paths: ["models"]\n'
    )
    (project / "models" / "sources.yml").write_text(
        "version: 2\nsources:\n  - name: raw\n    schema: raw\n    tables:\n      - name: events\n"
    )
    (project / "models" / "state.sql").write_text(STATE_SQL)
    return project


def run(args: argparse.Namespace) -> int:
    import pisa_pulse.core.dbt as pulse_dbt
    from pisa_pulse.core.cluster import Cluster, find_pg_bin, free_port

    if args.quick:
        args.ticks = 300
    if args.without_fix:
        pulse_dbt._undo_behavior_flag_growth = lambda: None
    root = Path(tempfile.mkdtemp(prefix="pulse-dbt-runner-"))
    cluster = Cluster(root / "pg", free_port(), find_pg_bin())
    cluster.start()
    windows = []
    try:
        url = cluster.url("postgres")
        conn = psycopg2.connect(url)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(
                "create schema raw; create table raw.events("
                " _load_seq bigserial primary key, cnt text not null, x bigint not null)"
            )
        session = pulse_dbt.DbtSession(
            url,
            target_path=root / "target",
            log_path=root / "logs",
            project_dir=_project(root),
            recycle_every=10**9,  # measure the runner itself, never recycled
            recycle_slowdown=1e9,
        )
        session.invoke(["run"])
        me = psutil.Process()
        times: list[float] = []
        started = time.monotonic()
        for i in range(args.ticks):
            with conn.cursor() as cur:
                cur.execute(
                    "insert into raw.events(cnt, x) select 'C' || (g % 5), g"
                    " from generate_series(1, 10) g"
                )
            result = session.tick()
            if not result.success:
                raise RuntimeError(result.error or result.failures)
            times.append(result.seconds)
            if (i + 1) % args.window == 0:
                w = times[-args.window :]
                windows.append(
                    {
                        "ticks": i + 1,
                        "median_s": statistics.median(w),
                        "rss_mb": me.memory_info().rss / 2**20,
                    }
                )
                print(
                    f"ticks {i + 1:>5}: median {windows[-1]['median_s']:.3f} s, "
                    f"RSS {windows[-1]['rss_mb']:.0f} MB",
                    flush=True,
                )
        session.close()
        conn.close()
    finally:
        cluster.destroy()
    first, last = windows[0], windows[-1]
    out = {
        "ticks": args.ticks,
        "fix": not args.without_fix,
        "seconds": time.monotonic() - started,
        "windows": windows,
        "tick_ratio_last_first": last["median_s"] / first["median_s"],
        "rss_growth": last["rss_mb"] / first["rss_mb"] - 1,
    }
    name = "dbt_runner" if not args.without_fix else "dbt_runner_without_fix"
    save(name, out)
    _plot(out, RESULTS_DIR.parent / f"realtime-{name}.png")
    print(
        f"last/first window median tick: x{out['tick_ratio_last_first']:.2f}; "
        f"RSS growth {out['rss_growth']:+.1%}"
    )
    return 0


def _plot(out: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [w["ticks"] for w in out["windows"]]
    fig, a = plt.subplots(figsize=(7, 3.5))
    a.plot(x, [w["median_s"] for w in out["windows"]], marker="o", label="median tick (s)")
    a.set_xlabel("ticks")
    a.set_ylabel("seconds")
    b = a.twinx()
    b.plot(x, [w["rss_mb"] for w in out["windows"]], color="tab:orange", label="RSS (MB)")
    b.set_ylabel("RSS (MB)")
    a.set_title("in-process dbt runner" + ("" if out["fix"] else " (without the #2136 fix)"))
    a.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
