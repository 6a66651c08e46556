"""`pulse sim …`: set up, fill, stream into and steer the application databases.

A running `pulse sim stream` is steered through the control database
(`src/pisa_pulse/sim/control.py`): `rate`, `pause` and `resume` write its `control` row,
which the stream polls twice a second; `status` reads what the stream reports
every second plus the row count of each database. `empty` truncates directly.

Every `pulse sim` command refuses to run (exit 2) when the configured sources are external
(production) databases (`Settings.sources_external`, PULSE_SOURCES_EXTERNAL): the simulator
creates, fills and empties databases, and even `status` creates its control database.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time

from pisa_pulse.core import config

REFUSED = 2


def _refuse_external(func):
    """Wrap a `pulse sim` command: refuse when the sources are someone else's databases."""

    def run(args) -> int:
        try:
            settings = config.load()
        except config.NotConfigured:
            return func(args)  # the command reports that itself
        if settings.sources_external:
            print(
                "pulse sim: refused: the configured sources "
                f"({config.redact(settings.source_url_template)}) "
                "are external, production databases, which the simulator must never create, "
                "write to or empty. It runs only against the demo's own PostgreSQL (`make run` "
                "without PULSE_SOURCE_URL_TEMPLATE). If these really are disposable test "
                "databases, set PULSE_SOURCES_EXTERNAL=0.",
                file=sys.stderr,
            )
            return REFUSED
        return func(args)

    return run


def _countries(args) -> list[str] | None:
    raw = getattr(args, "countries", None)
    return [c for c in raw.split(",") if c.strip()] if raw else None


def cmd_setup(args) -> int:
    from pisa_pulse.sim import api

    settings = config.load()
    t0 = time.monotonic()
    names = api.setup_databases(settings, _countries(args))
    print(f"{len(names)} application databases ready in {time.monotonic() - t0:.1f} s")
    return 0


def cmd_drop(args) -> int:
    from pisa_pulse.sim import api

    api.drop_databases(config.load(), _countries(args))
    return 0


def cmd_backfill(args) -> int:
    from pisa_pulse.sim import api

    settings = config.load()
    countries = _countries(args)
    api.setup_databases(settings, countries)
    t0 = time.monotonic()
    bar = None
    if not args.quiet:
        from tqdm import tqdm  # rows/s and ETA on stderr

        bar = tqdm(total=args.n, unit="rows", unit_scale=True, file=sys.stderr, mininterval=0.5)

    def progress(done: int, total: int) -> None:
        bar.update(done - bar.n)

    try:
        n = api.backfill(
            settings,
            args.n,
            countries=countries,
            seed=args.seed,
            messiness=args.messiness,
            even=args.even,
            progress=progress if bar else None,
            hours=args.hours,
        )
    finally:
        if bar:
            bar.close()
    dt = time.monotonic() - t0
    spread = f", created_at spread over the past {args.hours:g} h" if args.hours else ""
    print(f"{n} rows in {dt:.1f} s ({n / dt if dt else 0:.0f} rows/s){spread}")
    return 0


def cmd_stream(args) -> int:
    from pisa_pulse.sim import api, control

    settings = config.load()
    countries = _countries(args)
    if not args.no_setup:
        api.setup_databases(settings, countries)
    stream = api.Stream(
        settings,
        args.rate,
        countries=countries,
        even=args.even,
        writers=args.writers,
        seed=args.seed,
        messiness=args.messiness,
        hold_fraction=args.hold_fraction,
        hold_seconds=args.hold_seconds,
        bursts=not args.no_bursts,
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    control.set_control(settings, rate=args.rate, paused=False)  # a fresh stream owns the knobs
    conn = control.connect(control.ensure(settings), autocommit=True)
    stream.start()
    print(
        f"streaming at {args.rate}/s into {len(stream.countries)} databases (pid {_pid()});"
        " steer with `pulse sim rate|pause|resume`",
        flush=True,
    )
    last_report = 0.0
    try:
        while not stop.wait(0.5):
            rate, paused = control.read_control(conn)
            if rate is not None and rate != stream.rate:
                stream.set_rate(rate)
            if paused and not stream.paused:
                stream.pause()
            elif not paused and stream.paused:
                stream.resume()
            stats = stream.stats()
            del stats["rows_by_country"]
            control.write_status(conn, stats)
            if args.verbose and time.monotonic() - last_report >= 5:
                last_report = time.monotonic()
                print(json.dumps(stats), flush=True)
    finally:
        stream.stop()
        control.clear_status(conn)
        conn.close()
        print(f"stopped after {stream.stats()['rows_committed']} rows", flush=True)
    return 0


def _pid() -> int:
    import os

    return os.getpid()


def _wait_for_stream(settings, check, timeout: float = 3.0) -> dict | None:
    from pisa_pulse.sim import control

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        streams = control.read_streams(settings)
        if streams and all(check(s) for s in streams):
            return streams[0]
        time.sleep(0.2)
    return None


def cmd_rate(args) -> int:
    from pisa_pulse.sim import control

    settings = config.load()
    control.set_control(settings, rate=args.rate)
    seen = _wait_for_stream(settings, lambda s: s["target_rate"] == args.rate)
    print(f"rate {args.rate}/s" + ("" if seen else " (no running stream has picked it up yet)"))
    return 0


def _cmd_pause(paused: bool):
    def run(args) -> int:
        from pisa_pulse.sim import control

        settings = config.load()
        control.set_control(settings, paused=paused)
        seen = _wait_for_stream(settings, lambda s: s["paused"] == paused)
        word = "paused" if paused else "resumed"
        print(word + ("" if seen else " (no running stream has picked it up yet)"))
        return 0

    return run


def cmd_empty(args) -> int:
    from pisa_pulse.sim import api

    emptied = api.empty(config.load(), args.country)
    print(f"emptied {len(emptied)} database(s): {', '.join(emptied) or '-'}")
    return 0


def cmd_status(args) -> int:
    from pisa_pulse.sim import api, control

    settings = config.load()
    conn = control.connect(control.ensure(settings), autocommit=True)
    try:
        rate, paused = control.read_control(conn)
    finally:
        conn.close()
    counts = api.count_rows(settings, _countries(args))
    info = {
        "control": {"rate": rate, "paused": paused},
        "streams": control.read_streams(settings),
        "rows": counts,
        "rows_total": sum(counts.values()),
        "databases": len(counts),
    }
    if args.json:
        print(json.dumps(info, indent=2, sort_keys=True))
        return 0
    for s in info["streams"] or [{}]:
        if s:
            print(
                f"stream pid {s['pid']}: target {s['target_rate']}/s, current "
                f"{s['current_rate']:.1f}/s, {'paused, ' if s['paused'] else ''}"
                f"{s['rows_committed']} rows committed, {s['held_open']} held open"
            )
        else:
            print("no stream running")
    print(f"{info['rows_total']} rows in {info['databases']} databases")
    for code, n in sorted(counts.items()):
        print(f"  {code} {n}")
    return 0


def _add_generation_args(p: argparse.ArgumentParser, seed_default) -> None:
    p.add_argument("--countries", help="comma list of country codes (default: all 82)")
    p.add_argument("--even", action="store_true", help="spread evenly, not by sample size")
    p.add_argument("--seed", type=int, default=seed_default, help="random seed")
    p.add_argument("--messiness", type=float, default=None, help="messy cells (0.01; 0 = clean)")


def register(sub: argparse._SubParsersAction) -> None:
    sim = sub.add_parser("sim", help="the application-database simulator")
    cmds = sim.add_subparsers(dest="sim_command", required=True)

    p = cmds.add_parser("setup", help="create the country databases and tables")
    p.add_argument("--countries", help="comma list of country codes (default: all 82)")
    p.set_defaults(func=cmd_setup)

    p = cmds.add_parser("drop", help="drop the country databases (and the control database)")
    p.add_argument("--countries", help="comma list of country codes (default: all 82)")
    p.set_defaults(func=cmd_drop)

    p = cmds.add_parser("backfill", help="COPY N submissions at once")
    p.add_argument("n", type=int)
    _add_generation_args(p, seed_default=0)
    p.add_argument(
        "--hours",
        type=float,
        default=None,
        help="spread created_at over the past N hours, busier in each country's school hours",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_backfill)

    p = cmds.add_parser("stream", help="stream submissions until SIGINT/SIGTERM")
    p.add_argument("--rate", type=float, default=10.0, help="total rows per second")
    _add_generation_args(p, seed_default=None)
    p.add_argument("--writers", type=int, default=4, help="concurrent writer connections")
    p.add_argument("--hold-fraction", type=float, default=0.02, help="share of held transactions")
    p.add_argument("--hold-seconds", type=float, default=2.0, help="how long they stay open")
    p.add_argument("--no-bursts", action="store_true")
    p.add_argument("--no-setup", action="store_true", help="do not create missing databases")
    p.add_argument("--verbose", action="store_true", help="print stats every 5 s")
    p.set_defaults(func=cmd_stream)

    p = cmds.add_parser("rate", help="set a running stream's total rate")
    p.add_argument("rate", type=float)
    p.set_defaults(func=cmd_rate)

    cmds.add_parser("pause", help="pause a running stream").set_defaults(func=_cmd_pause(True))
    cmds.add_parser("resume", help="resume a paused stream").set_defaults(func=_cmd_pause(False))

    p = cmds.add_parser("empty", help="delete every submission (of one country)")
    p.add_argument("--country", help="country code (default: every database)")
    p.set_defaults(func=cmd_empty)

    p = cmds.add_parser("status", help="rows per database, the running stream's rate")
    p.add_argument("--countries", help="comma list of country codes (default: all 82)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    for p in cmds.choices.values():
        p.set_defaults(func=_refuse_external(p.get_default("func")))
