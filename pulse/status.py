"""What `pulse status` reports: every URL, DSN, folder and process id a user or test needs."""

from __future__ import annotations

import os

from pulse import config


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def collect() -> dict:
    state = config.read_state()
    info: dict = {"data_folder": str(config.home())}
    try:
        settings = config.load()
        info["warehouse_dsn"] = settings.warehouse_url
        info["source_dsn_template"] = settings.source_url_template
    except config.NotConfigured as exc:
        info["warehouse_dsn"] = None
        info["source_dsn_template"] = None
        info["error"] = str(exc)
    base = state.get("datasette_url")
    info["datasette_url"] = base
    if base:
        info["dashboard_url"] = f"{base}/dashboard"
        info["forage_urls"] = {
            name: f"{base}/forage/{name}"
            for name in (
                "submissions",
                "submissions_over_time",
                "learning_hours_per_week",
                "escs",
                "early_education_and_belonging",
            )
        }
    pids = dict(state.get("pids") or {})
    pg_pid = None
    pid_file = os.path.join(state.get("pg_data", ""), "postmaster.pid")
    if os.path.exists(pid_file):
        pg_pid = int(open(pid_file).read().split()[0])
    pids["postgres"] = pg_pid
    if state.get("supervisor_pid"):
        pids["supervisor"] = state["supervisor_pid"]
    info["pids"] = {name: pid for name, pid in pids.items() if _alive(pid)}
    info["postgres"] = {
        "port": state.get("pg_port"),
        "bin": state.get("pg_bin"),
        "data": state.get("pg_data"),
        "running": _alive(pg_pid),
    }
    info["sqlite_file"] = str(config.home() / "pulse.db")
    return info
