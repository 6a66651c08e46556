"""Running dbt against a given warehouse: from the command line or in-process."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from pisa_pulse.core import config

# Named selections of selectors.yml the loop runs (`dbt run --selector realtime` is one tick).
REALTIME = "realtime"  # the state only: the loop advances int_student_indices itself
REALTIME_WITH_INDICES = "realtime_with_indices"  # --no-advance, or while the advance fails


def dbt_environ(warehouse_url: str) -> dict[str, str]:
    env = {**os.environ, **config.dbt_env(warehouse_url)}
    env["DBT_PROFILES_DIR"] = str(config.REPO_ROOT)
    env.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    return env


def run_dbt(
    args: list[str],
    warehouse_url: str,
    *,
    target_path: Path | str | None = None,
    log_path: Path | str | None = None,
    check: bool = True,
    capture: bool = True,
) -> subprocess.CompletedProcess:
    """Run `dbt <args>` in a subprocess against `warehouse_url`.

    Pass a private target/log path when several dbt runs may share the project folder
    (tests, benchmarks): dbt writes its manifest and partial-parse file there.
    """
    cmd = [str(Path(sys.executable).with_name("dbt")), *args]
    if target_path:
        cmd += ["--target-path", str(target_path)]
    if log_path:
        cmd += ["--log-path", str(log_path)]
    result = subprocess.run(
        cmd,
        cwd=config.REPO_ROOT,
        env=dbt_environ(warehouse_url),
        text=True,
        capture_output=capture,
    )
    if check and result.returncode != 0:
        output = (result.stdout or "") + (result.stderr or "")
        raise RuntimeError(f"dbt {' '.join(args)} failed ({result.returncode}):\n{output[-6000:]}")
    return result


# --- In-process runner -------------------------------------------------------------------------
#
# A `dbt` command line costs seconds before any SQL (imports, project parse). Inside one
# long-lived process `dbtRunner(manifest=…)` skips both, so a small selection costs a fraction
# of a second. dbt keeps process-global state (flags, the adapter registry, event loggers), so:
# one session at a time per process, dbt only from the loop's thread, and anything else that
# needs dbt (full builds, docs) runs `run_dbt` in a subprocess.


@dataclass
class DbtInvocation:
    """What one in-process dbt invocation did."""

    args: list[str]
    success: bool
    seconds: float
    nodes: int = 0
    failures: list[str] = field(default_factory=list)
    error: str | None = None


_active_warehouse: str | None = None  # the warehouse the process-global dbt adapter points at


def _undo_behavior_flag_growth() -> None:
    """Work around dbt-adapters#2136 (dbt-postgres 1.11): every adapter instantiation appends
    the Postgres behavior flag to the module-level DEFAULT_BASE_BEHAVIOR_FLAGS list, and dbt
    makes a new adapter per invocation, so each in-process run builds one more flag (each with
    an `inspect.stack()`): +1 ms per invocation, +1 s per tick after 1,000 ticks. Recycling the
    runner would not help (the list is module state); de-duplicating it by name does.
    """
    from dbt.adapters.base import impl

    seen: set[str] = set()
    unique = []
    for flag in impl.DEFAULT_BASE_BEHAVIOR_FLAGS:
        if flag["name"] not in seen:
            seen.add(flag["name"])
            unique.append(flag)
    impl.DEFAULT_BASE_BEHAVIOR_FLAGS[:] = unique


class DbtSession:
    """A long-lived in-process dbt runner that parses the project once and reuses the manifest.

    `tick()` runs the real-time selection. The runner is recycled (re-parsed, adapter
    connections dropped) every `recycle_every` invocations, or sooner when the recent median
    tick is `recycle_slowdown` times slower than right after the last recycle: the
    measurement in docs/realtime.md shows whether that ever triggers.
    """

    def __init__(
        self,
        warehouse_url: str,
        *,
        target_path: Path | str,
        log_path: Path | str,
        select: str = "tag:realtime",
        exclude: str | None = None,
        selector: str | None = None,
        project_dir: Path | str = config.REPO_ROOT,
        recycle_every: int = 2000,
        recycle_slowdown: float = 1.5,
        window: int = 50,
    ):
        self.warehouse_url = warehouse_url
        self.target_path = str(target_path)
        self.log_path = str(log_path)
        self.select = select
        self.exclude = exclude
        # A named selection of selectors.yml wins over select/exclude (those serve projects
        # without one, such as the benchmarks' toy project); the loop may swap it between
        # ticks (RealtimeLoop._dbt_takes_the_model).
        self.selector = selector
        self.project_dir = str(project_dir)
        self.recycle_every = recycle_every
        self.recycle_slowdown = recycle_slowdown
        self.window = window
        self.manifest = None
        self.runner = None
        self.invocations = 0  # since the last (re)parse
        self.recycles = 0
        self.parse_seconds = 0.0
        self._recent: list[float] = []
        self._baseline: float | None = None

    def _common_args(self) -> list[str]:
        return [
            "--project-dir",
            self.project_dir,
            "--profiles-dir",
            str(config.REPO_ROOT),
            "--target-path",
            self.target_path,
            "--log-path",
            self.log_path,
        ]

    def _prepare_environment(self) -> None:
        """Point dbt's profile (env vars) and the process-global adapter at our warehouse."""
        global _active_warehouse
        _undo_behavior_flag_growth()
        os.environ.update(config.dbt_env(self.warehouse_url))
        os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
        if _active_warehouse != self.warehouse_url:
            from dbt.adapters.factory import reset_adapters

            reset_adapters()  # the registry keeps one adapter per type, bound to one database
            _active_warehouse = self.warehouse_url

    def parse(self) -> None:
        from dbt.cli.main import dbtRunner

        self._prepare_environment()
        started = time.perf_counter()
        result = dbtRunner().invoke(["parse", "--quiet", *self._common_args()])
        self.parse_seconds = time.perf_counter() - started
        if not result.success:
            raise RuntimeError(f"dbt parse failed: {result.exception}")
        self.manifest = result.result
        self.runner = dbtRunner(manifest=self.manifest)
        self.invocations = 0
        self._recent.clear()
        self._baseline = None

    def recycle(self) -> None:
        """Drop the runner, its manifest and the adapter's connections, then parse afresh."""
        global _active_warehouse
        from dbt.adapters.factory import reset_adapters

        self.runner = None
        self.manifest = None
        reset_adapters()
        _active_warehouse = None
        self.recycles += 1
        self.parse()

    def invoke(self, args: list[str]) -> DbtInvocation:
        """Run one dbt command in-process with the parsed manifest (parsing first if needed)."""
        if self.runner is None:
            self.parse()
        else:
            self._prepare_environment()
        full = [*args, "--quiet", "--no-write-json", "--log-level-file", "warn"]
        started = time.perf_counter()
        result = self.runner.invoke([*full, *self._common_args()])
        seconds = time.perf_counter() - started
        self.invocations += 1
        invocation = DbtInvocation(args=args, success=result.success, seconds=seconds)
        if result.exception is not None:
            invocation.error = f"{type(result.exception).__name__}: {result.exception}"
        for node_result in getattr(result.result, "results", None) or []:
            invocation.nodes += 1
            if str(node_result.status) not in ("success", "pass", "skipped"):
                invocation.failures.append(f"{node_result.node.name}: {node_result.message}")
        return invocation

    def tick(self) -> DbtInvocation:
        """Run the real-time selection; recycle the runner when it is due."""
        if self.selector:
            invocation = self.invoke(["run", "--selector", self.selector])
        else:
            exclude = ["--exclude", self.exclude] if self.exclude else []
            invocation = self.invoke(["run", "--select", self.select, *exclude])
        if invocation.success:
            self._track(invocation.seconds)
        if self._recycle_due():
            self.recycle()
        return invocation

    def _track(self, seconds: float) -> None:
        self._recent.append(seconds)
        if len(self._recent) > self.window:
            self._recent.pop(0)
        if self._baseline is None and len(self._recent) == self.window:
            self._baseline = statistics.median(self._recent)

    def _recycle_due(self) -> bool:
        if self.invocations >= self.recycle_every:
            return True
        if self._baseline is None or len(self._recent) < self.window:
            return False
        return statistics.median(self._recent) > self.recycle_slowdown * self._baseline

    def close(self) -> None:
        global _active_warehouse
        if self.runner is not None:
            from dbt.adapters.factory import reset_adapters

            reset_adapters()
            _active_warehouse = None
        self.runner = None
        self.manifest = None
