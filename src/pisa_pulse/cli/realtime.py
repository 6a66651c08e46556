"""`pulse run` (the real-time loop, what `make run` starts) and `pulse check`."""

from __future__ import annotations

import argparse
import json
import signal
import time
from pathlib import Path

from pisa_pulse.core import config
from pisa_pulse.core.config import SOURCE_FRESHNESS_JOB


def _jobs(args: argparse.Namespace, home: Path):
    """The slow jobs: each in a subprocess with its own dbt target folder."""
    from pisa_pulse.realtime.jobs import Job, pulse_argv

    def dbt(name: str, *dbt_args: str) -> list[str]:
        target = config.job_dir(name, home)
        return pulse_argv(
            "dbt", *dbt_args, "--target-path", str(target / "target"), "--log-path",
            str(target / "logs"),
        )  # fmt: skip

    jobs = []
    if args.build_every > 0:
        # Tests of every model, the slow marts, the data-quality counts (incremental) and the
        # snapshots: selector `slow` (selectors.yml). Not a full rebuild: rebuilding the tables
        # the serving views read would drop those views (cascade) under the publisher.
        jobs.append(Job("test", dbt("test", "build", "--selector", "slow"),
                        args.build_every, 120))  # fmt: skip
    if args.check_every > 0:
        jobs.append(Job("check", pulse_argv("check", "--wait", "0"), args.check_every, 300))
    if args.docs_every > 0:
        jobs.append(Job("docs", dbt("docs", "docs", "generate"), args.docs_every, 600))
    if args.source_freshness_every > 0:
        # dbt's own view of how recent the loaded rows are; `pulse status` shows its result
        # (ops/status.py reads its target/sources.json).
        jobs.append(Job(SOURCE_FRESHNESS_JOB, dbt(SOURCE_FRESHNESS_JOB, "source", "freshness"),
                        args.source_freshness_every, 120))  # fmt: skip
    if args.calibrate_every > 0 and _has_command("calibrate"):
        jobs.append(Job("calibrate", pulse_argv("calibrate", "homepos"), args.calibrate_every, 900))
    return jobs


def _has_command(name: str) -> bool:
    from pisa_pulse.cli.main import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return name in sub.choices


def cmd_run(args: argparse.Namespace) -> int:
    from pisa_pulse.core.dbt import REALTIME, REALTIME_WITH_INDICES, DbtSession, dbt_environ
    from pisa_pulse.loader.engine import Loader, WarehouseUnavailable
    from pisa_pulse.realtime.advance import StudentIndicesAdvancer
    from pisa_pulse.realtime.bootstrap import ensure_built
    from pisa_pulse.realtime.dbt_worker import DbtWorker
    from pisa_pulse.realtime.events import EventLog, StatusLine
    from pisa_pulse.realtime.jobs import JobScheduler
    from pisa_pulse.realtime.loop import LoopSettings, RealtimeLoop
    from pisa_pulse.realtime.publishing import SplitPublisher
    from pisa_pulse.serving.publisher import default_sqlite_path

    settings = config.load()
    home = config.home()
    log_dir = home / "logs"
    events = EventLog(args.log_file or log_dir / "realtime.jsonl")
    loop = None
    stopping = False

    def request_stop(signum, frame):
        nonlocal stopping
        stopping = True
        if loop is not None:
            loop.stop()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    loader = Loader(settings)
    session = DbtSession(
        settings.warehouse_url,
        target_path=home / "dbt" / "realtime" / "target",
        log_path=log_dir / "dbt-realtime",
        recycle_every=args.recycle_every,
        # selectors.yml: the loop advances int_student_indices itself, so dbt's ticks
        # (`dbt run --selector realtime`) only fold the state
        selector=REALTIME_WITH_INDICES if args.no_advance else REALTIME,
    )
    advancer = None if args.no_advance else StudentIndicesAdvancer(settings.warehouse_url)
    publisher = None
    scheduler = None
    dbt = session
    try:
        print("pulse run: preparing the warehouse …", flush=True)
        while not stopping:  # the warehouse may still be starting
            try:
                loader.tick()  # creates raw.* on a fresh warehouse, loads what is there
                break
            except WarehouseUnavailable as exc:
                events.emit("warehouse_unavailable", error=str(exc)[:300], phase="start")
                time.sleep(1.0)
        if stopping:
            return 0
        ran = ensure_built(session, events)
        # dbt ticks run beside the loop; on a restart dbt also parses there, so loading and
        # publishing (exact through the tail) start at once.
        dbt = DbtWorker(session, parse_first=not ran)
        if ran:
            print(f"pulse run: built ({'; '.join(ran)}), looping", flush=True)
        else:
            print("pulse run: looping (dbt parsing in the background)", flush=True)
        publisher = SplitPublisher(settings.warehouse_url, args.sqlite or default_sqlite_path())
        loop = RealtimeLoop(
            loader,
            dbt,
            publisher,
            advancer=advancer,
            warehouse_url=settings.warehouse_url,
            settings=LoopSettings(
                publish_interval=args.publish_interval,
                dbt_interval=args.dbt_interval,
                dbt_tail_rows=args.dbt_tail_rows,
                dbt_overlap=args.dbt_overlap,
            ),
            events=events,
            status=StatusLine(),
        )
        if stopping:
            return 0
        jobs = [] if args.no_jobs else _jobs(args, home)
        if jobs:
            scheduler = JobScheduler(
                jobs,
                events,
                log_dir,
                env=dbt_environ(settings.warehouse_url),
                warehouse_url=settings.warehouse_url,
            )
            scheduler.start()
        loop.run(max_seconds=args.max_seconds)
    finally:
        if scheduler is not None:
            scheduler.stop()
        if loop is not None:
            loop.close()
        if publisher is not None:
            publisher.close()
        if advancer is not None:
            advancer.close()
        loader.close()
        dbt.close()
        events.emit("stopped")
        events.close()
        if loop is not None:
            print(f"pulse run: stopped ({json.dumps(loop.summary())})", flush=True)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from pisa_pulse.realtime.check import check

    settings = config.load()
    if args.independent:
        from pisa_pulse.realtime.independent import cmd_check_independent

        return cmd_check_independent(args, settings)
    url = args.url
    if url is None and not args.sqlite:
        url = config.read_state().get("datasette_url")
    result = check(settings, url=url, sqlite_path=args.sqlite, wait=args.wait)
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
    else:
        verdict = "EQUAL to" if result.ok else "DIFFERENT from"
        print(
            f"pulse check: served numbers are {verdict} a full recomputation over "
            f"{result.source_count:,} source rows ({result.seconds:.1f} s)"
        )
        for problem in result.problems:
            print(f"  - {problem}")
    return 0 if result.ok else 1


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="the real-time loop: loader → publisher → dbt, every second")
    p.add_argument("--sqlite", help="SQLite file to publish (default: $PULSE_HOME/pulse.db)")
    p.add_argument("--publish-interval", type=float, default=0.5, help="republish at least every")
    p.add_argument("--dbt-interval", type=float, default=1.0, help="seconds between dbt ticks")
    p.add_argument(
        "--dbt-tail-rows", type=int, default=500, help="a longer tail: dbt before publishing"
    )
    p.add_argument(
        "--dbt-overlap",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="dbt ticks beside loading and publishing (--no-dbt-overlap: the loop waits)",
    )
    p.add_argument(
        "--no-advance",
        action="store_true",
        help="do not advance int_student_indices between dbt ticks (the tail is computed live)",
    )
    p.add_argument("--recycle-every", type=int, default=5_000, help="re-parse dbt every N ticks")
    p.add_argument("--build-every", type=float, default=600, help="dbt tests + slow marts (s)")
    p.add_argument("--check-every", type=float, default=0, help="pulse check every (s; 0: off)")
    p.add_argument("--docs-every", type=float, default=1800, help="dbt docs generate (s)")
    p.add_argument(
        "--source-freshness-every", type=float, default=300, help="dbt source freshness (s)"
    )
    p.add_argument("--calibrate-every", type=float, default=3600, help="HOMEPOS calibration (s)")
    p.add_argument("--no-jobs", action="store_true", help="no background jobs")
    p.add_argument("--max-seconds", type=float, help="stop after this long (tests, benchmarks)")
    p.add_argument("--log-file", help="JSON-lines log (default: $PULSE_HOME/logs/realtime.jsonl)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("check", help="compare the served numbers with a full recomputation")
    p.add_argument("--url", help="Datasette base URL (default: the running one, if any)")
    p.add_argument("--sqlite", help="compare the published SQLite file instead of HTTP")
    p.add_argument("--wait", type=float, default=30, help="seconds to wait for the count to match")
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--independent",
        action="store_true",
        help="compare with a recomputation in Python from the application DBs (no dbt, no SQL)",
    )
    p.set_defaults(func=cmd_check)
