"""`pulse params learn`: learn the parameter seeds from a warehouse's rows (indices/params.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pisa_pulse.core import config


def cmd_params_learn(args: argparse.Namespace) -> int:
    import psycopg2

    from pisa_pulse.indices.params import SEEDS_DIR, learn

    url = args.url or config.load().warehouse_url
    try:
        learn(url, Path(args.out) if args.out else SEEDS_DIR, build_views=not args.no_dbt)
    except psycopg2.errors.UndefinedTable as e:
        print(
            f"pulse params learn: {e.pgerror.splitlines()[0]}: build the learning views first"
            " (drop --no-dbt, or `pulse dbt run --select +tag:learning`)",
            file=sys.stderr,
        )
        return 2
    print("next: review the diff, then `pulse dbt seed` and `pulse dbt run --full-refresh`")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("params", help="parameter tables learned from rows (offline)")
    sub = p.add_subparsers(dest="params_command", required=True)
    learn = sub.add_parser(
        "learn", help="write seeds/learned_*.csv from the rows carrying official values"
    )
    learn.add_argument("--url", help="warehouse URL (default: the configured warehouse)")
    learn.add_argument("--out", help="folder for the CSV files (default: seeds/)")
    learn.add_argument("--no-dbt", action="store_true", help="the learning views are built already")
    learn.set_defaults(func=cmd_params_learn)
