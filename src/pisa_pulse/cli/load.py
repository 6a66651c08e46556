"""`pulse load`: the loader as a long-running service (or one tick with --once)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time

from pisa_pulse.core import config

log = logging.getLogger("loader")


def _positive_interval(text: str) -> float:
    value = float(text)
    if value < 0.1:
        raise argparse.ArgumentTypeError("the interval must be at least 0.1 s")
    return value


def cmd_load(args: argparse.Namespace) -> int:
    from pisa_pulse.loader.engine import Loader, WarehouseUnavailable

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    settings = config.load()
    sources = [s.strip() for s in args.sources.split(",")] if args.sources else None
    stopping = False

    def request_stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    loader = Loader(
        settings,
        sources=sources,
        reconcile_interval=args.reconcile_interval,
        overlap_s=args.overlap,
        sources_yml=args.sources_yml or os.environ.get("PULSE_LOADER_SOURCES_YML"),
    )
    backoff = 0.0
    last_report = time.monotonic()
    loaded = 0
    try:
        while not stopping:
            started = time.monotonic()
            try:
                result = loader.tick()
                backoff = 0.0
                loaded += result.total_rows
                if args.once and not result.total_rows and not result.pending:
                    loaded += loader.reconcile().total_rows
                    print(f"loaded {loaded} rows from {len(loader.sources)} sources")
                    return 0
                if args.once:
                    continue
            except WarehouseUnavailable:
                if args.once:
                    return 1
                backoff = min(5.0, max(0.2, backoff * 2))
                time.sleep(backoff)
                continue
            if time.monotonic() - last_report >= 60:
                log.info("loaded %d rows in the last minute", loaded)
                loaded, last_report = 0, time.monotonic()
            # A slow tick is followed at once by the next one.
            time.sleep(max(0.0, args.interval - (time.monotonic() - started)))
    finally:
        loader.close()
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("load", help="copy new source rows into the warehouse (runs until stopped)")
    p.add_argument(
        "--interval",
        type=_positive_interval,
        default=0.1,
        help="seconds between polls (default 0.1, minimum 0.1)",
    )
    p.add_argument("--once", action="store_true", help="load what is there, reconcile, exit")
    p.add_argument(
        "--reconcile-interval",
        type=float,
        default=5.0,
        help="seconds between count reconciliations and source discovery (default 5)",
    )
    p.add_argument(
        "--overlap",
        type=float,
        default=10.0,
        help="seconds of created_at re-read behind the last read (default 10)",
    )
    p.add_argument("--sources", help="comma-separated codes (default: PULSE_SOURCES or discover)")
    p.add_argument("--sources-yml", help="dbt sources YAML declaring the columns (default: repo's)")
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(func=cmd_load)


def main(argv: list[str] | None = None) -> int:
    """`python -m pisa_pulse.cli.load …` = `pulse load …`, without importing the other areas."""
    parser = argparse.ArgumentParser(prog="python -m pisa_pulse.cli.load")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["load", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
