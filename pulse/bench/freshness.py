"""`pulse bench freshness`: how long after its commit a submission shows in Forage's JSON.

Under a background stream at each rate, marker submissions are committed into random marker
countries; each is timed until (a) /forage/submissions counts every row committed by then and
(b) the marker country's submissions and mean DURECEC on /forage/early_education_and_belonging
have moved as the marker must move them. HTTP through Datasette, as Forage polls it.
When the load stops, `pulse check` compares every endpoint with a full recomputation.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from pulse.bench.common import RESULTS_DIR, save, summary

HELP = "seconds from commit to Forage's JSON: p50/p95/p99 at 10, 100, 1,000 submissions/s"
DEFAULT_COUNTRIES = [
    "FRA", "ITA", "MEX", "GBR", "ESP", "DEU", "USA", "JPN", "BRA", "CAN",
    "AUS", "KOR", "POL", "TUR", "CHL", "COL", "IDN", "THA", "SWE", "NLD",
]  # fmt: skip
TARGETS = {100: 1.0, 1000: 2.0}  # p95 targets (seconds) from the issue


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rates", default="10,100,1000", help="comma list of submissions/s")
    p.add_argument("--markers", type=int, default=40, help="markers per rate")
    p.add_argument("--backfill", type=int, default=10_000, help="rows loaded before timing")
    p.add_argument("--countries", type=int, default=20, help="background-load countries")
    p.add_argument("--warmup", type=float, default=10.0, help="seconds of load before markers")
    p.add_argument("--name", default="freshness", help="result file name (docs/bench/<name>)")
    p.add_argument("--quick", action="store_true", help="10 and 100/s, 15 markers, 2,000 rows")
    p.add_argument("--no-check", action="store_true", help="skip the full recomputation")
    p.add_argument("--keep", action="store_true", help="keep the tmp folder (logs, data)")


def run(args: argparse.Namespace) -> int:
    from pulse.bench._realtime_stack import Stack
    from pulse.sim.stream import Stream

    _stop_cleanly_on_sigterm()
    if args.quick:
        args.rates, args.markers, args.backfill, args.warmup = "10,100", 15, 2_000, 5.0
    rates = [float(r) for r in args.rates.split(",")]
    stack = Stack(DEFAULT_COUNTRIES[: args.countries], backfill=args.backfill, keep=args.keep)
    rng = random.Random(42)
    results = []
    check_result = None
    try:
        started = time.monotonic()
        stack.start()
        print(f"stack ready in {time.monotonic() - started:.0f} s ({stack.root})")
        for rate in rates:
            stream = Stream(stack.settings, rate, countries=stack.countries, seed=int(rate))
            stack.attach(stream)
            stream.start()
            try:
                time.sleep(args.warmup)
                since = time.time()
                committed_before = stream.stats()["rows_committed"]
                samples = []
                for k in range(args.markers):
                    samples.append(stack.measure_marker(rng, high=k % 2 == 0))
                    time.sleep(rng.uniform(0.2, 0.8))  # markers land at random tick phases
                until = time.time()
                achieved = (stream.stats()["rows_committed"] - committed_before) / (until - since)
            finally:
                stream.stop()
            results.append(_rate_result(rate, samples, stack.loop_ticks(since, until), achieved))
            results[-1]["rss_mb"] = stack.rss_mb()
            _print_row(results[-1])
            time.sleep(3)  # let the loop drain before the next rate
        _save(args, results, None)  # the timings are kept even if the check is cut short
        if not args.no_check:
            from pulse.realtime.check import check

            check_result = check(stack.settings, url=stack.url, wait=60, work_dir=stack.root)
            verdict = "EQUAL" if check_result.ok else "DIFFERENT"
            print(f"after the load: every endpoint {verdict} to a full recomputation")
            for problem in check_result.problems:
                print(f"  - {problem}")
    finally:
        stack.stop()
    print(f"results: {_save(args, results, check_result)}")
    failed = [r for r in results if r["rate"] in TARGETS and not r["meets_target"]]
    return 1 if failed or (check_result is not None and not check_result.ok) else 0


def _save(args, results: list[dict], check_result):
    out = {
        "backfill": args.backfill,
        "countries": args.countries,
        "markers_per_rate": args.markers,
        "rates": results,
        "check": None if check_result is None else check_result.as_dict(),
    }
    path = save(args.name, out)
    plot(out, RESULTS_DIR.parent / f"realtime-{args.name}.png")
    return path


def _rate_result(rate: float, samples: list[dict], ticks: list[dict], achieved: float) -> dict:
    seconds = [s["seconds"] for s in samples if s["seconds"] is not None]
    timed_out = sum(1 for s in samples if s["seconds"] is None)
    both = _summary(seconds)
    target = TARGETS.get(int(rate))

    def med(key: str):
        values = [t[key] for t in ticks if t.get(key) is not None]
        return round(statistics.median(values), 4) if values else None

    return {
        "rate": rate,
        "achieved_rate": round(achieved, 1),
        "freshness_s": both,
        "count_s": _summary([s["count_s"] for s in samples]),
        "mean_s": _summary([s["mean_s"] for s in samples]),
        "timed_out": timed_out,
        "samples": samples,
        "loop": {
            "ticks": len(ticks),
            "median_tick_s": med("tick_s"),
            "median_loader_s": med("loader_s"),
            "median_publish_s": med("publish_s"),
            "median_dbt_s": med("dbt_s"),
        },
        "target_p95_s": target,
        "meets_target": None if target is None else bool(both) and both["p95"] <= target,
    }


def _summary(values: list) -> dict:
    present = [v for v in values if v is not None]
    return summary(present) if present else {}


def _print_row(r: dict) -> None:
    f = r["freshness_s"]
    if not f:
        print(f"{r['rate']:>7g}/s  no marker arrived ({r['timed_out']} timed out)")
        return
    loop = r["loop"]
    print(
        f"{r['rate']:>7g}/s  p50 {f['p50']:.3f}  p95 {f['p95']:.3f}  p99 {f['p99']:.3f} s"
        f"  (n={f['n']}, timed out {r['timed_out']}, achieved {r['achieved_rate']}/s)"
        f"  tick {loop['median_tick_s']}"
        f"  publish {loop['median_publish_s']}  dbt {loop['median_dbt_s']}"
        + ("" if r["target_p95_s"] is None else f"  target p95 ≤ {r['target_p95_s']} s")
    )


def plot(out: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = [r for r in out["rates"] if r["freshness_s"]]
    if not rates:
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    data = [[s["seconds"] for s in r["samples"] if s["seconds"] is not None] for r in rates]
    labels = [f"{r['rate']:g}/s" for r in rates]
    ax.boxplot(data, tick_labels=labels, whis=(5, 95), showfliers=True)
    for i, r in enumerate(rates, start=1):
        ax.plot([i - 0.3, i + 0.3], [r["freshness_s"]["p95"]] * 2, color="tab:red", lw=1)
        if r["target_p95_s"]:
            ax.plot([i - 0.3, i + 0.3], [r["target_p95_s"]] * 2, "k--", lw=1)
    ax.set_ylabel("seconds from commit to Forage JSON")
    ax.set_xlabel(f"background load (backfill {out['backfill']:,} rows)")
    ax.set_title("Freshness: red = measured p95, dashed = target p95")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _stop_cleanly_on_sigterm() -> None:
    """SIGTERM → KeyboardInterrupt, so the stack's processes and cluster are stopped."""
    import signal

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
