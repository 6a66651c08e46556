"""`pulse`: one command line for the whole system.

Each area registers its own sub-commands (a `register(subparsers)` function) so
that this file stays a table of contents.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys

from pisa_pulse.core import config

# Modules that add sub-commands; each exposes register(subparsers).
COMMAND_MODULES = [
    "pisa_pulse.cli.db",
    "pisa_pulse.cli.sim",
    "pisa_pulse.cli.load",
    "pisa_pulse.cli.up",
    "pisa_pulse.cli.bench",
    "pisa_pulse.cli.realtime",
    "pisa_pulse.cli.calibrate",
    "pisa_pulse.cli.params",
    "pisa_pulse.cli.serve",
]


def cmd_status(args: argparse.Namespace) -> int:
    from pisa_pulse.ops.status import collect

    info = collect()
    if args.json:
        print(json.dumps(info, indent=2, sort_keys=True))
    else:
        for key, value in sorted(info.items()):
            print(f"{key:28} {value}")
    return 0


def cmd_env(args: argparse.Namespace) -> int:
    settings = config.load()
    env = config.dbt_env(settings.warehouse_url)
    env["PULSE_WAREHOUSE_URL"] = settings.warehouse_url
    env["PULSE_SOURCE_URL_TEMPLATE"] = settings.source_url_template
    for key, value in env.items():
        print(f"export {key}='{value}'")
    return 0


def cmd_dbt(args: argparse.Namespace) -> int:
    """Run dbt against the configured warehouse (connection settings filled in)."""
    from pisa_pulse.core.dbt import run_dbt

    settings = config.load()
    return run_dbt(args.dbt_args, settings.warehouse_url, check=False, capture=False).returncode


def version() -> str:
    """The installed package's version (pyproject.toml), as pip knows it."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    try:
        return package_version("pisa-pulse")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pulse", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("status", help="URLs, DSNs, data folder and process ids")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("env", help="print shell exports for dbt and the loader")
    p.set_defaults(func=cmd_env)

    p = sub.add_parser("dbt", help="run dbt with the warehouse connection filled in")
    p.add_argument("dbt_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_dbt)

    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except config.NotConfigured as exc:
        print(f"pulse: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
