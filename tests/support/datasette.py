"""Datasette serving a SQLite file, as `pulse serve --sqlite` starts it, for tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from pisa_pulse.core.cluster import free_port


def start_serving(
    path: Path, log_path: Path, env: dict[str, str] | None = None, ready: str = "/forage/"
) -> tuple[subprocess.Popen, str]:
    """Start `pulse serve --sqlite path` on a free port; return once `ready` answers 200."""
    port = free_port()
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "pisa_pulse.cli.serve", "serve"]
            + ["--sqlite", str(path), "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(base + ready, timeout=1).status_code == 200:
                return server, base
        except httpx.HTTPError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            raise AssertionError(f"Datasette did not start:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.2)
