"""`pulse bench soak`: a long run at a steady rate stays fast and small (`make soak`).

Minute by minute: marker freshness (as in `pulse bench freshness`), the loop's tick times
(its JSON-lines log) and the resident memory of every process. Pass when the last minute's
median tick and p95 freshness are within 1.2x of the first minute's, every process's RSS
grew by at most 10% (after the first two minutes of warm-up), and the whole stack stays
under 1.5 GB without PostgreSQL's shared buffers.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from pulse.bench.common import RESULTS_DIR, percentile, save

HELP = "N minutes at a steady rate: tick time, freshness and memory stay flat"
IN_ALL = False
RATIO_MAX = 1.2
RSS_GROWTH_MAX = 0.10
STACK_MB_MAX = 1536


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--minutes", type=float, default=30)
    p.add_argument("--rate", type=float, default=100)
    p.add_argument("--backfill", type=int, default=10_000)
    p.add_argument("--countries", type=int, default=20)
    p.add_argument("--quick", action="store_true", help="4 minutes at 20/s, 2,000 rows")
    p.add_argument("--keep", action="store_true")


def run(args: argparse.Namespace) -> int:
    from pulse.bench._realtime_stack import Stack
    from pulse.bench.freshness import DEFAULT_COUNTRIES
    from pulse.sim.stream import Stream

    _stop_cleanly_on_sigterm()
    if args.quick:
        args.minutes, args.rate, args.backfill = 4, 20, 2_000
    stack = Stack(DEFAULT_COUNTRIES[: args.countries], backfill=args.backfill, keep=args.keep)
    rng = random.Random(7)
    minutes: list[dict] = []
    try:
        stack.start()
        stream = Stream(stack.settings, args.rate, countries=stack.countries, seed=3)
        stack.attach(stream)
        stream.start()
        try:
            t0 = time.monotonic()
            for m in range(int(args.minutes)):
                wall0, samples, rss = time.time(), [], []
                end = t0 + 60 * (m + 1)
                while time.monotonic() < end:
                    samples.append(stack.measure_marker(rng, high=len(samples) % 2 == 0))
                    if len(samples) % 10 == 0:
                        rss.append(stack.rss_mb())
                    time.sleep(rng.uniform(0.5, 1.5))
                rss.append(stack.rss_mb())
                minutes.append(_minute(m + 1, samples, stack.loop_ticks(wall0, time.time()), rss))
                _print_minute(minutes[-1])
        finally:
            stream.stop()
    finally:
        stack.stop()
    verdict = _verdict(minutes)
    out = {"rate": args.rate, "backfill": args.backfill, "minutes": minutes, **verdict}
    path = save("soak", out)
    plot(out, RESULTS_DIR.parent / "realtime-soak.png")
    for line in verdict["findings"]:
        print(line)
    print(f"results: {path}")
    return 0 if verdict["ok"] else 1


def _minute(minute: int, samples: list[dict], ticks: list[dict], rss: list[dict]) -> dict:
    seconds = [s["seconds"] for s in samples if s["seconds"] is not None]
    dbt = [t["dbt_s"] for t in ticks if t.get("dbt_s") is not None]
    tick_s = [t["tick_s"] for t in ticks if t.get("tick_s") is not None]
    return {
        "minute": minute,
        "markers": len(samples),
        "timed_out": len(samples) - len(seconds),
        "p50_s": statistics.median(seconds) if seconds else None,
        "p95_s": percentile(seconds, 95) if seconds else None,
        "median_tick_s": statistics.median(tick_s) if tick_s else None,
        "median_dbt_s": statistics.median(dbt) if dbt else None,
        "dbt_ticks": len(dbt),
        "rss_mb": rss[-1],
    }


def _print_minute(m: dict) -> None:
    def f(v):
        return "-" if v is None else f"{v:.3f}"

    total = sum(v for v in m["rss_mb"].values() if v == v)
    print(
        f"minute {m['minute']:>3}: freshness p50 {f(m['p50_s'])} p95 {f(m['p95_s'])} s, "
        f"tick {f(m['median_tick_s'])} s, dbt {f(m['median_dbt_s'])} s x{m['dbt_ticks']}, "
        f"stack {total:.0f} MB",
        flush=True,
    )


def _verdict(minutes: list[dict]) -> dict:
    findings, ok = [], True
    if len(minutes) < 2:
        return {"ok": False, "findings": ["fewer than two minutes measured"]}
    first, last = minutes[0], minutes[-1]
    for key in ("median_tick_s", "p95_s"):
        a, b = first[key], last[key]
        if a and b:
            ratio = b / a
            good = ratio <= RATIO_MAX
            ok &= good
            findings.append(f"{key}: first {a:.3f}, last {b:.3f} → x{ratio:.2f} (≤ {RATIO_MAX})")
    warm = minutes[min(2, len(minutes) - 1) - 1]["rss_mb"]
    for name, mb in last["rss_mb"].items():
        base = warm.get(name)
        if base and base == base and mb == mb:
            growth = mb / base - 1
            ok &= growth <= RSS_GROWTH_MAX
            findings.append(f"rss {name}: {base:.0f} → {mb:.0f} MB ({growth:+.1%})")
    total = sum(v for v in last["rss_mb"].values() if v == v)
    ok &= total <= STACK_MB_MAX
    findings.append(f"whole stack without shared buffers: {total:.0f} MB (≤ {STACK_MB_MAX})")
    return {"ok": bool(ok), "findings": findings}


def plot(out: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ms = out["minutes"]
    if not ms:
        return
    x = [m["minute"] for m in ms]
    fig, (a, b) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    a.plot(x, [m["p95_s"] for m in ms], label="freshness p95 (s)")
    a.plot(x, [m["p50_s"] for m in ms], label="freshness p50 (s)")
    a.plot(x, [m["median_tick_s"] for m in ms], label="median loop tick (s)")
    a.plot(x, [m["median_dbt_s"] for m in ms], label="median dbt tick (s)")
    a.legend()
    a.grid(alpha=0.3)
    for name in ms[-1]["rss_mb"]:
        b.plot(x, [m["rss_mb"].get(name) for m in ms], label=name)
    b.set_ylabel("RSS (MB)")
    b.set_xlabel(f"minute at {out['rate']:g} submissions/s")
    b.legend()
    b.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _stop_cleanly_on_sigterm() -> None:
    """SIGTERM → KeyboardInterrupt, so the stack's processes and cluster are stopped."""
    import signal

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
