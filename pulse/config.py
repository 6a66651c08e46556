"""Where things are: the data folder, the warehouse and the application databases.

Everything is configuration, never code: environment variables win, then the
state file that `pulse up` / `pulse db start` writes for the local cluster.

  PULSE_HOME                  data folder (default: <repo>/.pulse)
  PULSE_WAREHOUSE_URL         postgresql://… of the warehouse database
  PULSE_SOURCE_URL_TEMPLATE   postgresql://…/{country}: one application database per country
  PULSE_SOURCES               comma-separated lower-case country codes (default: discover)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

REPO_ROOT = Path(__file__).resolve().parent.parent
WAREHOUSE_DB = "warehouse"


def home() -> Path:
    return Path(os.environ.get("PULSE_HOME", REPO_ROOT / ".pulse")).resolve()


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

    def source_url(self, country: str) -> str:
        return self.source_url_template.format(country=country.lower())

    def source_database(self, country: str) -> str:
        """The database name of a country's application database."""
        return urlparse(self.source_url(country)).path.lstrip("/")

    @property
    def admin_url(self) -> str:
        """The maintenance database on the source server (to create/drop country databases)."""
        return urlparse(self.source_url("x"))._replace(path="/postgres").geturl()


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
