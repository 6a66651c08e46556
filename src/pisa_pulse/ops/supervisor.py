"""`pulse up`: the whole system in one command (what `make run` runs), and the supervisor.

Starts the local PostgreSQL (unless PULSE_WAREHOUSE_URL points elsewhere), creates the demo's
application databases, then runs each service as a child process: the simulator's stream,
the real-time loop (loader → dbt → publisher) and Datasette.

The supervisor heals: a child that exits is restarted after an exponential back-off (1 s,
doubling to 30 s; back to 1 s once it has stayed up for 60 s); every restart is logged (on
the terminal and in `logs/supervisor.log`, with a marker in the child's own log) and counted
in `$PULSE_HOME/supervisor.json`, which `pulse status` shows. The other children keep
running. A child that crashes 5 times within 2 minutes makes it give up: everything stops in
order (children in reverse start order, then PostgreSQL) and it exits 1. Ctrl-C or SIGTERM
stops everything the same way and exits 0; nothing else stops PostgreSQL.

Production mode (the sources are external, see `Settings.sources_external` in core/config.py):
no simulator, and nothing is created on or written to the sources' server.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pisa_pulse.core import config

EXIT_GAVE_UP = 1


@dataclass(frozen=True)
class RestartPolicy:
    initial: float = 1.0  # seconds before the first restart
    maximum: float = 30.0  # the back-off doubles up to this
    stable_after: float = 60.0  # up this long: the next crash starts the back-off over
    max_crashes: int = 5  # give up when this many crashes …
    window: float = 120.0  # … fall within this many seconds

    def delay(self, consecutive: int) -> float:
        return min(self.maximum, self.initial * 2 ** max(0, consecutive - 1))


@dataclass
class Service:
    name: str
    argv: list[str]
    env: dict[str, str] | None = None
    process: subprocess.Popen | None = None
    restarts: int = 0
    started_at: float | None = None  # monotonic
    consecutive: int = 0  # crashes since it last stayed up for `stable_after`
    crashes: deque = field(default_factory=deque)  # monotonic times, within the window
    restart_at: float | None = None  # monotonic: a restart is due then
    last_exit: int | None = None
    last_exit_at: str | None = None  # UTC, ISO 8601
    last_restart_at: str | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


def _pulse(*args: str) -> list[str]:
    return [sys.executable, "-m", "pisa_pulse.cli", *args]


def services(args: argparse.Namespace, datasette_port: int, production: bool) -> list[Service]:
    """The children, in start order (stopped in reverse). No simulator in production."""
    children = [
        Service("datasette", _pulse("serve", "--port", str(datasette_port))),
        Service("pipeline", _pulse("run")),
    ]
    if not production and args.rate > 0:  # rate 0: no simulator (benchmarks write their own)
        rate = str(args.rate)
        children.append(Service("simulator", _pulse("sim", "stream", "--rate", rate, "--no-setup")))
    return children


def state_file() -> Path:
    """What the supervisor reports: its pid, and each child's pid, state and restart count."""
    return config.home() / "supervisor.json"


def read_report() -> dict:
    try:
        return json.loads(state_file().read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class Supervisor:
    """Runs the children, restarts the ones that exit, gives up on one that keeps crashing."""

    def __init__(
        self,
        children: list[Service],
        log_dir: Path,
        policy: RestartPolicy | None = None,
        echo: Callable[[str], None] | None = None,
    ):
        self.children = children
        self.log_dir = Path(log_dir)
        self.policy = policy or RestartPolicy()
        self.echo = echo or (lambda line: print(line, flush=True))
        self.state = "starting"
        self.gave_up: str | None = None
        self.log_dir.mkdir(parents=True, exist_ok=True)

    # --- logging and the report -------------------------------------------------------------

    def log(self, message: str, service: Service | None = None) -> None:
        self.echo(f"pulse: {message}")
        line = f"{_now()} {message}\n"
        with open(self.log_dir / "supervisor.log", "a") as f:
            f.write(line)
        if service is not None:  # a marker in the child's own log, between its runs
            with open(self._log_path(service), "a") as f:
                f.write(f"--- pulse supervisor: {line}")

    def _log_path(self, service: Service) -> Path:
        return self.log_dir / f"{service.name}.log"

    def _child_state(self, service: Service) -> str:
        if service.running():
            return "running"
        if service.restart_at is not None:
            return "restarting"
        return "stopped"

    def report(self) -> dict:
        return {
            "supervisor_pid": os.getpid(),
            "state": self.state,
            "gave_up": self.gave_up,
            "updated_at": _now(),
            "restarts_total": sum(s.restarts for s in self.children),
            "services": {
                s.name: {
                    "pid": s.pid if s.running() else None,
                    "state": self._child_state(s),
                    "restarts": s.restarts,
                    "last_exit": s.last_exit,
                    "last_exit_at": s.last_exit_at,
                    "last_restart_at": s.last_restart_at,
                    "log": str(self._log_path(s)),
                }
                for s in self.children
            },
        }

    def write_report(self) -> None:
        """Atomically: a reader sees the old report or the new one, never half of one."""
        path = state_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.report(), indent=2, sort_keys=True))
        os.replace(tmp, path)

    # --- children ------------------------------------------------------------------------------

    def _spawn(self, service: Service) -> None:
        with open(self._log_path(service), "ab") as log:
            # Own session: a terminal's Ctrl-C reaches only us, and we stop children in order.
            service.process = subprocess.Popen(
                service.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=service.env,
            )
        service.started_at = time.monotonic()

    def start(self) -> None:
        for service in self.children:
            self._spawn(service)
        self.state = "running"
        self.write_report()

    def _reap_group(self, service: Service, sig: int) -> None:
        """Signal what is left of a child's process group (e.g. a job it ran) after it died."""
        if service.process is None:
            return
        try:
            os.killpg(service.process.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _crashed(self, service: Service, now: float) -> None:
        code = service.process.returncode
        up_for = now - (service.started_at or now)
        service.last_exit = code
        service.last_exit_at = _now()
        self._reap_group(service, signal.SIGTERM)
        if up_for >= self.policy.stable_after:
            service.consecutive = 0
        service.consecutive += 1
        service.crashes.append(now)
        while service.crashes and now - service.crashes[0] > self.policy.window:
            service.crashes.popleft()
        if len(service.crashes) >= self.policy.max_crashes:
            self.gave_up = (
                f"{service.name} crashed {len(service.crashes)} times within "
                f"{self.policy.window:g} s (last: {describe_exit(code)}); giving up. "
                f"See {self._log_path(service)}"
            )
            self.log(self.gave_up, service)
            return
        delay = self.policy.delay(service.consecutive)
        service.restart_at = now + delay
        self.log(
            f"{service.name} exited ({describe_exit(code)}) after {up_for:.1f} s; "
            f"restarting in {delay:g} s (see {self._log_path(service)})",
            service,
        )

    def _restart(self, service: Service) -> None:
        self._reap_group(service, signal.SIGKILL)  # leftovers that ignored the SIGTERM
        service.restart_at = None
        service.restarts += 1
        service.last_restart_at = _now()
        try:
            self._spawn(service)
        except OSError as exc:
            service.process = None
            self.gave_up = f"{service.name} could not be restarted: {exc}; giving up"
            self.log(self.gave_up, service)
            return
        self.log(
            f"{service.name} restarted (pid {service.pid}; restart {service.restarts})", service
        )

    def step(self, now: float | None = None) -> bool:
        """Look at every child once; False when the supervisor has given up."""
        now = time.monotonic() if now is None else now
        changed = False
        for service in self.children:
            if service.restart_at is not None:
                if now >= service.restart_at:
                    self._restart(service)
                    changed = True
                    if self.gave_up:
                        break
            elif service.process is not None and service.process.poll() is not None:
                self._crashed(service, now)
                changed = True
                if self.gave_up:
                    break
        if changed:
            self.write_report()
        return self.gave_up is None

    def _stop_one(self, service: Service, timeout: float) -> None:
        service.restart_at = None
        proc = service.process
        if proc is None or proc.poll() is not None:
            return  # a crashed child's group was signalled when it crashed
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.log(f"{service.name} did not stop within {timeout:g} s; killing it")
            self._reap_group(service, signal.SIGKILL)
            proc.wait()
        self._reap_group(service, signal.SIGKILL)  # nothing of it outlives us

    def stop(self, timeout: float = 15) -> None:
        """Children in reverse start order."""
        self.log("stopping " + ("(gave up) " if self.gave_up else "") + "…")
        self.state = "stopping"
        self.write_report()
        for service in reversed(self.children):
            self._stop_one(service, timeout)
        self.state = "gave up" if self.gave_up else "stopped"
        self.write_report()

    def run(self, should_stop: Callable[[], bool], interval: float = 0.25) -> int:
        """Supervise until should_stop() (0) or giving up (EXIT_GAVE_UP); children stopped."""
        try:
            while not should_stop():
                if not self.step():
                    break
                time.sleep(interval)
        finally:
            self.stop()
        return EXIT_GAVE_UP if self.gave_up else 0


class _StopFlag:
    """Set by SIGINT/SIGTERM."""

    def __init__(self):
        self.set = False

    def __call__(self) -> bool:
        return self.set

    def install(self) -> None:
        def request_stop(signum, frame):
            self.set = True

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)


def supervise(
    children: list[Service],
    log_dir: Path,
    policy: RestartPolicy | None = None,
    on_started: Callable[[Supervisor], None] | None = None,
) -> int:
    """Start the children and supervise them until SIGINT/SIGTERM (0) or giving up (1)."""
    stop = _StopFlag()
    stop.install()
    sup = Supervisor(children, log_dir, policy)
    try:
        sup.start()
        if on_started is not None:
            on_started(sup)
    except BaseException:
        sup.stop()
        raise
    return sup.run(stop)


def prepare_sources(settings: config.Settings) -> str:
    """The demo creates its application databases; production touches nothing on the sources."""
    if settings.sources_external:
        if settings.sources:
            n = str(len(settings.sources))
        else:
            try:
                from pisa_pulse.loader.discovery import (
                    discover,
                )  # one read-only query on pg_database

                n = str(len(discover(settings)))
            except Exception as exc:  # noqa: BLE001 - the loader reports and retries
                n = f"? (cannot list them yet: {str(exc).strip().splitlines()[0][:120]})"
        return f"production mode: reading {n} external sources read-only; simulator off"
    from pisa_pulse.sim import api as sim

    created = sim.setup_databases(settings)
    ready = f"{len(created)} application databases ready (demo: the simulator writes into them)"
    if sum(sim.count_rows(settings).values()):
        return ready  # a restart: the sources keep their history
    # Empty demo sources: a day of history first, so the over-time chart has its shape from
    # the first minute (20,000 rows into the 82 databases: 3.2-4.8 s on 2026-12-02).
    rows, hours = 20_000, 24
    t0 = time.monotonic()
    n = sim.backfill(settings, rows, hours=hours)
    return (
        f"{ready}; empty, so {n} submissions of history spread over the past "
        f"{hours} h were added in {time.monotonic() - t0:.1f} s"
    )
