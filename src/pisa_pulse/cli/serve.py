"""`pulse publish` (warehouse marts → SQLite, in a loop) and `pulse serve` (Datasette)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from pisa_pulse.core import config
from pisa_pulse.serving.publisher import (
    DEFAULT_ANALYST_INTERVAL_S,
    DEFAULT_INTERVAL_S,
    Publisher,
    default_sqlite_path,
)


def cmd_publish(args: argparse.Namespace) -> int:
    settings = config.load()
    path = args.sqlite or default_sqlite_path()
    with Publisher(
        settings.warehouse_url, path, analyst_interval=args.analyst_interval
    ) as publisher:
        if args.once:
            changed = publisher.publish_once()
            print(f"pulse publish: {'published' if changed else 'unchanged'} → {path}")
            return 0
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        print(f"pulse publish: every {args.interval:g} s → {path}", flush=True)
        try:
            publisher.run(
                args.interval,
                stop,
                on_error=lambda exc: print(f"pulse publish: {exc}", file=sys.stderr, flush=True),
            )
        except KeyboardInterrupt:
            pass
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from pisa_pulse.serving.app import serve

    path = args.sqlite or default_sqlite_path()
    scheme = "https" if args.ssl_certfile else "http"
    print(f"pulse serve: {scheme}://{args.host}:{args.port}/dashboard over {path}", flush=True)
    serve(path, args.host, args.port, args.ssl_keyfile, args.ssl_certfile)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "publish", help="copy the serving marts into the SQLite file Datasette reads"
    )
    p.add_argument("--sqlite", help="SQLite file (default: $PULSE_HOME/pulse.db)")
    p.add_argument(
        "--interval", type=float, default=DEFAULT_INTERVAL_S, help="seconds between checks"
    )
    p.add_argument(
        "--analyst-interval",
        type=float,
        default=DEFAULT_ANALYST_INTERVAL_S,
        help="seconds between reads of the analyst marts (reconciliation, …)",
    )
    p.add_argument("--once", action="store_true", help="publish once (if changed) and exit")
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser("serve", help="Datasette: Forage's endpoints, the marts, /dashboard")
    p.add_argument("--sqlite", help="SQLite file (default: $PULSE_HOME/pulse.db)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8001)
    p.add_argument("--ssl-keyfile", help="serve HTTPS with this private key (PEM)")
    p.add_argument("--ssl-certfile", help="serve HTTPS with this certificate (PEM)")
    p.set_defaults(func=cmd_serve)


def main(argv: list[str] | None = None) -> int:
    """`python -m pisa_pulse.cli.serve serve|publish …`: these commands without the rest."""
    parser = argparse.ArgumentParser(prog="python -m pisa_pulse.cli.serve")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
