"""`pulse params learn`: learn the parameter seeds from a warehouse's rows (indices/params.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pisa_pulse.core import config


def cmd_params_learn(args: argparse.Namespace) -> int:
    import psycopg2

    from pisa_pulse.cli import progress
    from pisa_pulse.indices.params import LEARNED_TABLES, SEEDS_DIR, learn

    url = args.url or config.load().warehouse_url
    steps = len(LEARNED_TABLES) + (0 if args.no_dbt else 1)
    bar = progress.bar(args.progress, total=steps, desc="params learn", unit="step")

    def report(message: str) -> None:
        # The messages stay on stdout as before; the bar (stderr) moves one step per table,
        # and past the dbt build when the first table is written.
        bar.write(message, file=sys.stdout)
        if message.startswith("building"):
            bar.set_postfix_str("dbt run (the learning views)")
        else:
            bar.n = max(bar.n, 0 if args.no_dbt else 1)
            bar.set_postfix_str(message.split(":", 1)[0])
            bar.update(1)

    try:
        learn(
            url,
            Path(args.out) if args.out else SEEDS_DIR,
            build_views=not args.no_dbt,
            progress=report,
        )
    except psycopg2.errors.UndefinedTable as e:
        bar.close()
        print(
            f"pulse params learn: {e.pgerror.splitlines()[0]}: build the learning views first"
            " (drop --no-dbt, or `pulse dbt run --select +tag:learning`)",
            file=sys.stderr,
        )
        return 2
    bar.close()
    print("next: review the diff, then `pulse dbt seed` and `pulse dbt run --full-refresh`")
    return 0


def register(subparsers) -> None:
    from pisa_pulse.cli import progress

    p = subparsers.add_parser("params", help="parameter tables learned from rows (offline)")
    sub = p.add_subparsers(dest="params_command", required=True)
    learn = sub.add_parser(
        "learn", help="write seeds/learned_*.csv from the rows carrying official values"
    )
    learn.add_argument("--url", help="warehouse URL (default: the configured warehouse)")
    learn.add_argument("--out", help="folder for the CSV files (default: seeds/)")
    learn.add_argument("--no-dbt", action="store_true", help="the learning views are built already")
    progress.add_argument(learn)
    learn.set_defaults(func=cmd_params_learn)
