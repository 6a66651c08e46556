"""Where things are: the data folder, the warehouse and the application databases.

Everything is configuration, never code: environment variables win, then the
state file that `pulse up` / `pulse db start` writes for the local cluster.

  PULSE_HOME                  data folder (default: <repo>/.pulse)
  PULSE_WAREHOUSE_URL         postgresql://… of the warehouse database
  PULSE_SOURCE_URL_TEMPLATE   postgresql://…/{country}: one application database per country
  PULSE_SOURCES               comma-separated lower-case country codes (default: discover)
  PULSE_SOURCES_EXTERNAL      1: the sources are someone else's databases (production), read
                              only: `pulse up` runs no simulator and creates nothing on their
                              server, `pulse sim …` refuses. 0: the demo's own sources. Unset:
                              external unless the source template's host is this machine's
                              loopback (127.x, ::1, localhost), which is where the demo's are.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from ipaddress import ip_address
from pathlib import Path
from urllib.parse import urlparse


def _project_dir() -> Path:
    """The dbt project (dbt_project.yml, models/, seeds/, data/) the package works on.

    PULSE_PROJECT_DIR names it; otherwise the checkout this package was installed from
    (src/pisa_pulse/core/config.py -> the repository), else the current directory.
    """
    if os.environ.get("PULSE_PROJECT_DIR"):
        return Path(os.environ["PULSE_PROJECT_DIR"]).resolve()
    checkout = Path(__file__).resolve().parents[3]
    return checkout if (checkout / "dbt_project.yml").exists() else Path.cwd().resolve()


REPO_ROOT = _project_dir()
WAREHOUSE_DB = "warehouse"


def home() -> Path:
    return Path(os.environ.get("PULSE_HOME", REPO_ROOT / ".pulse")).resolve()


def job_dir(name: str, home_dir: Path | None = None) -> Path:
    """Where the slow job `name` of `pulse run` keeps its dbt target/ and logs/."""
    return (home_dir or home()) / "jobs" / name


SOURCE_FRESHNESS_JOB = "source_freshness"  # `dbt source freshness`; shown by `pulse status`


def state_path() -> Path:
    return home() / "state.json"


def read_state() -> dict:
    try:
        return json.loads(state_path().read_text())
    except FileNotFoundError:
        return {}


def write_state(**updates) -> dict:
    state = read_state()
    state.update(updates)
    state_path().parent.mkdir(parents=True, exist_ok=True)
    tmp = state_path().with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True))
    tmp.replace(state_path())
    return state


@dataclass
class Settings:
    home: Path
    warehouse_url: str
    source_url_template: str
    sources: list[str] | None = field(default=None)
    # PULSE_SOURCES_EXTERNAL as given (None: unset, decided from the template's host)
    external_sources: bool | None = field(default=None)

    def source_url(self, country: str) -> str:
        return self.source_url_template.format(country=country.lower())

    def source_database(self, country: str) -> str:
        """The database name of a country's application database."""
        return urlparse(self.source_url(country)).path.lstrip("/")

    @property
    def admin_url(self) -> str:
        """The maintenance database on the source server (to create/drop country databases)."""
        return urlparse(self.source_url("x"))._replace(path="/postgres").geturl()

    @property
    def sources_external(self) -> bool:
        """True when the sources are production databases: read them, never write them."""
        if self.external_sources is not None:
            return self.external_sources
        return not _is_loopback(urlparse(self.source_url("x")).hostname)


def _is_loopback(host: str | None) -> bool:
    """A TCP host on this machine's loopback. No host (a Unix socket) is not: the demo's
    cluster is always reached over 127.0.0.1, a server's own databases often by socket."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def redact(url: str) -> str:
    """A URL fit for a terminal or a journal: its password replaced by ***."""
    u = urlparse(url)
    if not u.password:
        return url
    netloc = u.netloc.replace(f":{u.password}@", ":***@", 1)
    return u._replace(netloc=netloc).geturl()


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _flag(name: str) -> bool | None:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return None
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise NotConfigured(f"{name}={raw!r}: expected 1/0 (true/false, yes/no)")


class NotConfigured(RuntimeError):
    pass


def load() -> Settings:
    state = read_state()
    port = state.get("pg_port")
    local = f"postgresql://postgres@127.0.0.1:{port}" if port else None
    warehouse = os.environ.get("PULSE_WAREHOUSE_URL") or (local and f"{local}/{WAREHOUSE_DB}")
    template = os.environ.get("PULSE_SOURCE_URL_TEMPLATE") or (local and f"{local}/{{country}}")
    if not warehouse or not template:
        raise NotConfigured(
            "no PostgreSQL configured: run `pulse db start` (or `make run`), "
            "or set PULSE_WAREHOUSE_URL and PULSE_SOURCE_URL_TEMPLATE"
        )
    sources = os.environ.get("PULSE_SOURCES")
    return Settings(
        home=home(),
        warehouse_url=warehouse,
        source_url_template=template,
        sources=[s.strip().lower() for s in sources.split(",") if s.strip()] if sources else None,
        external_sources=_flag("PULSE_SOURCES_EXTERNAL"),
    )


def dbt_env(warehouse_url: str) -> dict[str, str]:
    """Environment variables that profiles.yml reads, from a warehouse URL."""
    u = urlparse(warehouse_url)
    return {
        "PULSE_WH_HOST": u.hostname or "127.0.0.1",
        "PULSE_WH_PORT": str(u.port or 5432),
        "PULSE_WH_USER": u.username or "postgres",
        "PULSE_WH_PASSWORD": u.password or "",
        "PULSE_WH_DBNAME": (u.path or "/warehouse").lstrip("/") or WAREHOUSE_DB,
    }
