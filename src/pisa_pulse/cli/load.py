"""`pulse load`: the loader as a long-running service (or one tick with --once)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import time

from tqdm.contrib.logging import logging_redirect_tqdm

from pisa_pulse.cli import progress
from pisa_pulse.core import config

log = logging.getLogger("loader")


def _positive_interval(text: str) -> float:
    value = float(text)
    if value < 0.1:
        raise argparse.ArgumentTypeError("the interval must be at least 0.1 s")
    return value


def _source_rows(settings, cnt: str) -> int:
    """About how many rows the source holds: the planner's estimate (free), else a count."""
    import psycopg2

    conn = psycopg2.connect(settings.source_url(cnt), connect_timeout=3)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "select reltuples::bigint from pg_class where oid = 'public.responses'::regclass"
            )
            estimate = cur.fetchone()[0]
            if estimate is None or estimate < 0:  # never analysed
                cur.execute("select count(*) from public.responses")
                estimate = cur.fetchone()[0]
            return int(estimate)
    finally:
        conn.close()


def estimate_backlog(settings, sources: list[str]) -> int | None:
    """Rows still to copy, about: the sources' sizes minus what raw.loader_sources says is
    loaded. Read once by the CLI for the progress bar, never by the loader's tick."""
    import psycopg2

    try:
        total = sum(_source_rows(settings, cnt) for cnt in sources)
        conn = psycopg2.connect(settings.warehouse_url, connect_timeout=3)
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "select coalesce(sum(rows_loaded - coalesce(rows_deleted, 0)), 0)"
                    " from raw.loader_sources where cnt = any(%s)",
                    (sources,),
                )
                loaded = int(cur.fetchone()[0])
        finally:
            conn.close()
    except psycopg2.Error:
        return None  # a bar without an ETA is better than no load
    return max(0, total - loaded)


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
    # --once: a bar with rate and ETA (rows), when asked for or on a terminal.
    bar = None
    quiet_logs = contextlib.ExitStack()
    if args.once and progress.enabled(args.progress):
        bar = progress.bar(args.progress, desc="pulse load", unit=" rows", unit_scale=True)
        # Log lines are written above the bar instead of through it.
        quiet_logs.enter_context(logging_redirect_tqdm())
    try:
        while not stopping:
            started = time.monotonic()
            try:
                result = loader.tick()
                backoff = 0.0
                loaded += result.total_rows
                if bar is not None:
                    if bar.total is None and loader.sources:
                        remaining = estimate_backlog(settings, loader.sources)
                        if remaining is not None:
                            bar.total = loaded + remaining
                    bar.update(result.total_rows)
                    if bar.total is not None and bar.n > bar.total:
                        bar.total = bar.n
                if args.once and not result.total_rows and not result.pending:
                    loaded += loader.reconcile().total_rows
                    if bar is not None:
                        bar.total = bar.n = loaded
                        bar.close()
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
        if bar is not None:
            bar.close()
        quiet_logs.close()
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
    progress.add_argument(p)
    p.set_defaults(func=cmd_load)


def main(argv: list[str] | None = None) -> int:
    """`python -m pisa_pulse.cli.load …` = `pulse load …`, without importing the other areas."""
    parser = argparse.ArgumentParser(prog="python -m pisa_pulse.cli.load")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["load", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
