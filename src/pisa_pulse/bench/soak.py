"""`pulse bench soak`: a long run at a steady rate stays fast and small (`make soak`).

The system as `make run` starts it (src/pisa_pulse/bench/system.py), the benchmark writing the load:
every commit's lag is measured, a commit never reflected counts as lost (infinite). Minute
by minute: lag p50/p95, the slow jobs that ran, the resident memory of every service. Pass
when no commit is lost, the last five minutes' p95 is within 1.2x of the first five's,
every service's RSS grew by at most 10% after the first two minutes of warm-up, and the
whole stack stays under 1.5 GB without PostgreSQL.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

from pisa_pulse.bench.common import RESULTS_DIR, percentile, save

HELP = "N minutes at a steady rate on `pulse up`: no commit lost, freshness and memory flat"
IN_ALL = False
RATIO_MAX = 1.2
RSS_GROWTH_MAX = 0.10
STACK_MB_MAX = 1536
BLOCK_MINUTES = 5  # first and last blocks compared


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--minutes", type=float, default=30)
    p.add_argument("--rate", type=float, default=100)
    p.add_argument("--quick", action="store_true", help="4 minutes at 20/s")
    p.add_argument("--keep", action="store_true")


def run(args: argparse.Namespace) -> int:
    from pisa_pulse.bench.freshness import stop_cleanly_on_sigterm
    from pisa_pulse.bench.system import System, measure

    stop_cleanly_on_sigterm()
    if args.quick:
        args.minutes, args.rate = 4, 20
    with System(keep=args.keep) as system:
        rss: list[tuple[float, dict]] = []
        stop = threading.Event()

        def sample_rss():
            while not stop.wait(20):
                rss.append((time.time(), system.rss_mb()))

        sampler = threading.Thread(target=sample_rss, daemon=True)
        sampler.start()
        try:
            result = measure(system, args.rate, args.minutes * 60, progress=_quiet)
        finally:
            stop.set()
            sampler.join(30)
    minutes = _minutes(result, rss)
    for m in minutes:
        _print_minute(m)
    verdict = _verdict(minutes, result)
    out = {
        "rate": args.rate,
        "system": "pulse up (make run)",
        "minutes": minutes,
        "lag_s": result["lag_s"],
        "achieved_rate": result["achieved_rate"],
        "jobs": result["jobs"],
        **verdict,
    }
    path = save("soak", out)
    plot(out, RESULTS_DIR.parent / "realtime-soak.png")
    for line in verdict["findings"]:
        print(line)
    print(f"results: {path}")
    return 0 if verdict["ok"] else 1


def _quiet(line: str) -> None:
    if "s to go" in line and int(line.rsplit(",", 1)[1].split()[0]) % 60 < 10:
        print(line, flush=True)  # about once a minute


def _minutes(result: dict, rss: list[tuple[float, dict]]) -> list[dict]:
    samples = result["samples"]
    if not samples:
        return []
    t0 = samples[0]["t"]
    out = []
    for m in range(int((samples[-1]["t"] - t0) // 60) + 1):
        a, b = t0 + 60 * m, t0 + 60 * (m + 1)
        lags = [s["lag"] for s in samples if a <= s["t"] < b]
        mem = [r for t, r in rss if t < b]
        out.append(
            {
                "minute": m + 1,
                "commits": len(lags),
                "lost": sum(1 for v in lags if v == float("inf")),
                "p50_s": statistics.median(lags) if lags else None,
                "p95_s": percentile(lags, 95) if lags else None,
                "jobs": sorted(
                    {j["job"] for j in result["jobs"] if j["start"] < b and j["end"] > a}
                ),
                "rss_mb": mem[-1] if mem else {},
            }
        )
    return out


def _print_minute(m: dict) -> None:
    def f(v):
        return "-" if v is None else f"{v:.3f}"

    total = sum(m["rss_mb"].values())
    print(
        f"minute {m['minute']:>3}: {m['commits']:,} commits, lost {m['lost']}, "
        f"lag p50 {f(m['p50_s'])} p95 {f(m['p95_s'])} s, stack {total:.0f} MB"
        + (f", jobs: {', '.join(m['jobs'])}" if m["jobs"] else ""),
        flush=True,
    )


def _verdict(minutes: list[dict], result: dict) -> dict:
    findings, ok = [], True
    block = min(BLOCK_MINUTES, len(minutes) // 2)  # --quick (4 minutes): 2-minute blocks
    if block < 1:
        return {"ok": False, "findings": ["fewer than two minutes measured"]}
    lost = result["lag_s"]["lost"]
    ok &= lost == 0
    findings.append(f"commits: {result['lag_s']['n']:,}, lost {lost} (0 allowed)")
    samples, t0 = result["samples"], result["samples"][0]["t"]
    last_start = t0 + 60 * (len(minutes) - block)
    first = [s["lag"] for s in samples if s["t"] < t0 + 60 * block]
    last = [s["lag"] for s in samples if s["t"] >= last_start]
    a, b = percentile(first, 95), percentile(last, 95)
    ratio = b / a
    ok &= ratio <= RATIO_MAX
    findings.append(
        f"lag p95: first {block} min {a:.3f} s, last {block} min "
        f"{b:.3f} s → x{ratio:.2f} (≤ {RATIO_MAX})"
    )
    warm = minutes[1]["rss_mb"]
    for name, mb in minutes[-1]["rss_mb"].items():
        base = warm.get(name)
        if base:
            growth = mb / base - 1
            ok &= growth <= RSS_GROWTH_MAX
            findings.append(f"rss {name}: {base:.0f} → {mb:.0f} MB ({growth:+.1%})")
    total = sum(minutes[-1]["rss_mb"].values())
    ok &= total <= STACK_MB_MAX
    findings.append(f"whole stack without PostgreSQL: {total:.0f} MB (≤ {STACK_MB_MAX})")
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
    a.plot(x, [m["p95_s"] for m in ms], label="lag p95 (s)")
    a.plot(x, [m["p50_s"] for m in ms], label="lag p50 (s)")
    for m in ms:
        if m["jobs"]:
            a.axvspan(m["minute"] - 0.5, m["minute"] + 0.5, color="orange", alpha=0.15)
    a.set_title("commit → Forage lag per minute (orange: a slow job ran)", fontsize=9)
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
