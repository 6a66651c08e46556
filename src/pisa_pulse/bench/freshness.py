"""`pulse bench freshness`: seconds from a submission's commit to Forage's JSON.

Drives the system as `make run` starts it (`pulse up`: durable warehouse, every source,
slow jobs on; src/pisa_pulse/bench/system.py) and writes the load itself, so every commit's lag is
known: thousands of samples per rate, a commit never reflected within 15 s counted as
infinite in every percentile (and failing the run). Reports p50/p95/p99, the achieved rate
and the worst 10-second window, marking windows in which a slow job ran. When the load
stops, `pulse check` compares every endpoint with a full recomputation.
"""

from __future__ import annotations

import argparse
import time

from pisa_pulse.bench.common import RESULTS_DIR, save

HELP = "seconds from commit to Forage's JSON on `pulse up`: p50/p95/p99 at 100 and 1,000/s"
TARGET_P95_S = {100: 0.5, 1000: 1.0}
TARGET_WORST_WINDOW_P95_S = 2.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rates", default="100,1000", help="comma list of submissions/s")
    p.add_argument("--seconds", type=float, default=90, help="seconds of load per rate")
    p.add_argument("--name", default="freshness", help="result file name (docs/bench/<name>)")
    p.add_argument("--quick", action="store_true", help="100/s for 20 s")
    p.add_argument("--no-check", action="store_true", help="skip the full recomputation")
    p.add_argument("--keep", action="store_true", help="keep the data folder (logs, data)")
    p.add_argument(
        "--fsync-off",
        action="store_true",
        help="a variant, to price durability: fsync and full_page_writes turned off on the "
        "running cluster (ALTER SYSTEM) before the load; labelled so in the result",
    )


def run(args: argparse.Namespace) -> int:
    from pisa_pulse.bench.system import System, measure

    stop_cleanly_on_sigterm()
    if args.quick:
        args.rates, args.seconds = "100", 20
    rates = [float(r) for r in args.rates.split(",")]
    results, check = [], None
    started = time.monotonic()
    with System(keep=args.keep) as system:
        print(f"pulse up ready in {time.monotonic() - started:.0f} s")
        if args.fsync_off:
            make_not_durable(system.settings.warehouse_url)
        for rate in rates:
            result = measure(system, rate, args.seconds)
            judge(result)
            results.append(result)
            print_row(result)
            time.sleep(3)
        _save(args, results, None)  # the timings are kept even if the check is cut short
        if not args.no_check:
            from pisa_pulse.realtime.check import check as full_check

            check = full_check(system.settings, url=system.url, wait=60, work_dir=system.home)
            print(
                f"after the load: every endpoint {'EQUAL' if check.ok else 'DIFFERENT'} "
                "to a full recomputation"
            )
            for problem in check.problems:
                print(f"  - {problem}")
            _save(args, results, check)
    ok = all(r["meets_target"] is not False for r in results)
    return 0 if ok and (check is None or check.ok) else 1


def make_not_durable(warehouse_url: str) -> None:
    """The --fsync-off variant: both settings are reloadable (no restart, same data)."""
    import psycopg2

    conn = psycopg2.connect(warehouse_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("alter system set fsync = off")
        cur.execute("alter system set full_page_writes = off")
        cur.execute("select pg_reload_conf()")
    conn.close()
    print("variant: fsync and full_page_writes OFF (not what `make run` ships)")


def _save(args, results: list[dict], check) -> None:
    durability = "fsync OFF (variant)" if args.fsync_off else "durable warehouse"
    out = {
        "system": f"pulse up (make run): {durability}, every source, jobs on",
        "rates": results,
        "check": None if check is None else check.as_dict(),
    }
    plot(out, RESULTS_DIR.parent / f"realtime-{args.name}.png")
    # the per-commit samples are plotted, not kept (tens of thousands)
    kept = {**out, "rates": [{k: v for k, v in r.items() if k != "samples"} for r in results]}
    print(f"results: {save(args.name, kept)}")


def judge(r: dict) -> None:
    """Targets: p95 per rate, the worst 10-second window, and no commit lost."""
    target = TARGET_P95_S.get(int(r["rate"]))
    worst = max((w["p95"] for w in r["windows"]), default=None)
    r["worst_window_p95_s"] = worst
    r["target_p95_s"] = target
    r["meets_target"] = (
        None
        if target is None
        else r["lag_s"]["n"] > 0
        and r["lag_s"]["lost"] == 0
        and r["lag_s"]["p95"] <= target
        and worst <= TARGET_WORST_WINDOW_P95_S
    )


def print_row(r: dict) -> None:
    s = r["lag_s"]
    if not s["n"]:
        print(f"{r['rate']:>7g}/s  no commit measured")
        return
    jobs = sorted({j["job"] for j in r["jobs"]}) or ["none"]
    target = "" if r["target_p95_s"] is None else f"  target p95 ≤ {r['target_p95_s']} s"
    print(
        f"{r['rate']:>7g}/s  p50 {s['p50']:.3f}  p95 {s['p95']:.3f}  p99 {s['p99']:.3f}  "
        f"max {s['max']:.3f} s  worst 10-s window p95 {r['worst_window_p95_s']:.3f} s  "
        f"(n={s['n']:,} commits, lost {s['lost']}, achieved {r['achieved_rate']}/s, "
        f"slow jobs: {', '.join(jobs)}){target}"
    )


def plot(out: dict, path) -> None:
    """Lag of every commit over time per rate; windows with a slow job shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = [r for r in out["rates"] if r["samples"]]
    if not rates:
        return
    fig, axes = plt.subplots(len(rates), 1, figsize=(8, 2.6 * len(rates)), squeeze=False)
    for ax, r in zip(axes[:, 0], rates, strict=True):
        t0 = r["samples"][0]["t"]
        finite = [s for s in r["samples"] if s["lag"] != float("inf")]
        ax.plot([s["t"] - t0 for s in finite], [s["lag"] for s in finite], ",", alpha=0.5)
        lost = [s["t"] - t0 for s in r["samples"] if s["lag"] == float("inf")]
        if lost:
            ax.plot(lost, [15] * len(lost), "rx", label=f"lost ({len(lost)})")
        for w in r["windows"]:
            if w["jobs"]:
                ax.axvspan(w["start"] - t0, w["start"] - t0 + 10, color="orange", alpha=0.15)
        ax.axhline(r["lag_s"]["p95"], color="tab:red", lw=1, label=f"p95 {r['lag_s']['p95']:.2f} s")
        if r["target_p95_s"]:
            ax.axhline(r["target_p95_s"], color="k", ls="--", lw=1, label="target p95")
        ax.set_ylim(0, max(2.5, min(15, r["lag_s"]["max"] * 1.1)))
        ax.set_ylabel("lag (s)")
        ax.set_title(
            f"{r['rate']:g} submissions/s: {r['lag_s']['n']:,} commits (orange: a slow job ran)",
            fontsize=9,
        )
        ax.legend(fontsize=7, loc="upper right")
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("seconds into the run")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def stop_cleanly_on_sigterm() -> None:
    """SIGTERM → KeyboardInterrupt, so `pulse up` and its cluster are stopped."""
    import signal

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
