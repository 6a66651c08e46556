"""Running dbt against a given warehouse: from the command line or in-process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pulse import config


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
