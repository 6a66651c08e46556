"""`pulse calibrate …`: the slow parameter jobs (HOMEPOS blocks)."""

from __future__ import annotations

import argparse
import json

from pisa_pulse.core import config


def cmd_calibrate_homepos(args: argparse.Namespace) -> int:
    from pisa_pulse.cli import progress
    from pisa_pulse.indices.calibrate import calibrate_homepos

    countries = [c.strip().upper() for c in args.countries.split(",")] if args.countries else None
    bar = progress.bar(args.progress, desc="calibrate homepos", unit="country")

    def advance(cnt: str, done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.set_postfix_str(cnt)  # refreshes the bar

    try:
        report = calibrate_homepos(
            args.url or config.load(),
            countries=countries,
            min_rows=args.min_rows,
            min_official=args.min_official,
            growth=args.growth,
            refresh=not args.no_refresh,
            progress=advance,
        )
        if bar.total:
            bar.n = bar.total
            bar.set_postfix_str("done")
    finally:
        bar.close()
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
        return 0
    for c in report.countries:
        within = "" if c.within_001_official is None else f" within0.01={c.within_001_official:.3f}"
        print(
            f"{c.cnt:8} {c.status:15} method={c.method or '-':13} version={c.version or '-'}"
            f" rows={c.n_rows} official={c.n_official}{within} {c.message}"
        )
    rescored = ", ".join(f"{c} {n}" for c, n in report.rescored.items()) or "none"
    print(f"refreshed int_homepos_params: {report.refreshed}; rows rescored: {rescored}")
    print(f"{report.seconds:.1f} s")
    return 1 if any(c.status == "failed" for c in report.countries) else 0


def register(subparsers) -> None:
    from pisa_pulse.cli import progress
    from pisa_pulse.indices.calibrate import DEFAULT_GROWTH, DEFAULT_MIN_OFFICIAL, DEFAULT_MIN_ROWS

    p = subparsers.add_parser("calibrate", help="slow parameter jobs (HOMEPOS country blocks)")
    sub = p.add_subparsers(dest="calibrate_command", required=True)
    h = sub.add_parser("homepos", help="fit HOMEPOS six-item blocks for countries without one")
    h.add_argument("--url", help="warehouse URL (default: the configured warehouse)")
    h.add_argument("--countries", help="comma list (default: every country without a seed block)")
    h.add_argument("--min-rows", type=int, default=DEFAULT_MIN_ROWS, help="rows needed for MML")
    h.add_argument(
        "--min-official",
        type=int,
        default=DEFAULT_MIN_OFFICIAL,
        help="rows with official HOMEPOS needed to fit to them",
    )
    h.add_argument(
        "--growth", type=float, default=DEFAULT_GROWTH, help="recalibrate when rows grew this much"
    )
    h.add_argument("--no-refresh", action="store_true", help="do not rebuild int_homepos_params")
    h.add_argument("--json", action="store_true", help="machine-readable report")
    progress.add_argument(h)
    h.set_defaults(func=cmd_calibrate_homepos)
