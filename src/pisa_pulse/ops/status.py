"""What `pulse status` reports: every URL, DSN, folder and process id a user or test needs.

Also what the supervisor of `pulse up` reports in `$PULSE_HOME/supervisor.json`: each
service's state, pid and restart count (`restarts`, and `supervisor.services`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pisa_pulse.core import config
from pisa_pulse.ops.supervisor import read_report


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _ended(report: dict) -> str:
    """The state of a supervisor that is no longer running."""
    state = report.get("state")
    return state if state in ("stopped", "gave up") else "died"


def source_freshness(sources_json: Path) -> dict | None:
    """The last `dbt source freshness` of the slow jobs (its target/sources.json): per source,
    dbt's status, the newest load and how old it was then; None before the first run."""
    try:
        results = json.loads(sources_json.read_text())
    except (OSError, ValueError):
        return None
    checked_at = (results.get("metadata") or {}).get("generated_at")
    out = {"checked_at": checked_at, "sources": {}}
    for r in results.get("results") or []:
        name = ".".join(r["unique_id"].split(".")[-2:])
        out["sources"][name] = {
            "status": r.get("status"),
            "max_loaded_at": r.get("max_loaded_at"),
            "age_s": r.get("max_loaded_at_time_ago_in_s"),
        }
    return out


def collect() -> dict:
    state = config.read_state()
    info: dict = {"data_folder": str(config.home())}
    try:
        settings = config.load()
        info["warehouse_dsn"] = settings.warehouse_url
        info["source_dsn_template"] = settings.source_url_template
        info["sources_external"] = settings.sources_external
    except config.NotConfigured as exc:
        info["warehouse_dsn"] = None
        info["source_dsn_template"] = None
        info["sources_external"] = None
        info["error"] = str(exc)
    base = state.get("datasette_url")
    info["datasette_url"] = base
    if base:
        info["dashboard_url"] = f"{base}/dashboard"
        # 200 while the data are fresh, 503 with the reasons (docs/serving.md).
        info["health_url"] = f"{base}/-/pulse-health"
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
    # The supervisor's own report (ops/supervisor.py) is newer than state.json's pids: a
    # restarted child has a new pid. Kept after a stop, so the last run's restarts stay visible.
    report = read_report()
    if report:
        supervisor_pid = report.get("supervisor_pid")
        running = _alive(supervisor_pid) and report.get("state") in ("starting", "running")
        children = report.get("services") or {}
        info["supervisor"] = {
            "pid": supervisor_pid if _alive(supervisor_pid) else None,
            "state": report.get("state") if _alive(supervisor_pid) else _ended(report),
            "gave_up": report.get("gave_up"),
            "updated_at": report.get("updated_at"),
            "restarts_total": report.get("restarts_total", 0),
            "services": children,
        }
        info["restarts"] = {name: child.get("restarts", 0) for name, child in children.items()}
        if running:
            pids.update({name: child.get("pid") for name, child in children.items()})
            pids["supervisor"] = supervisor_pid
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
    info["source_freshness"] = source_freshness(
        config.job_dir(config.SOURCE_FRESHNESS_JOB) / "target" / "sources.json"
    )
    return info
