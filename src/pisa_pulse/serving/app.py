"""The Datasette application that serves the published SQLite file, with PISA Pulse settings."""

from __future__ import annotations

import asyncio
from pathlib import Path

import yaml
from datasette.app import Datasette
from datasette.database import Database

from pisa_pulse.core import config
from pisa_pulse.serving import catalog
from pisa_pulse.serving.cpu_priority import favour_event_loop
from pisa_pulse.serving.dbt_docs import target_dir
from pisa_pulse.serving.forage_plugin import CHARTS, DATABASE
from pisa_pulse.serving.health import Thresholds
from pisa_pulse.serving.publisher import ensure_sqlite

METADATA = Path(__file__).resolve().parent / "metadata.yml"

SETTINGS = {
    # Forage polls every second: Datasette's default max-age=5 would serve stale numbers.
    "default_cache_ttl": 0,
    # Analysts' SQL: read-only connections (mode=ro), stopped after one second.
    "sql_time_limit_ms": 1000,
    "facet_time_limit_ms": 200,
    # The file changes under Datasette's feet: a download could be torn; the marts are small
    # enough to export as CSV/JSON instead.
    "allow_download": False,
    "max_returned_rows": 5000,
}


def _quiet_datasette_errors() -> None:
    """Datasette 0.65's default error handler prints a rich traceback (with locals) for every
    error page when `rich` is installed (requirements.lock has it), and raises ValueError instead of
    answering when the error is not being handled (a 404 for an unknown route, e.g. a POST to
    /pulse/<table>/-/insert). Error pages need no traceback: turn that printing off."""
    from datasette import handle_exception

    handle_exception.rich = None


def load_metadata(served: catalog.Catalog | None = None) -> dict:
    """Datasette's metadata: the hand-written part (metadata.yml: the instance's title,
    source, licence, the `publication` table, canned queries: what dbt does not know) with,
    for every served mart, its title, description, columns, facets, sort and units generated
    from dbt's manifest (serving/catalog.py). A table in both: dbt's keys win."""
    metadata = yaml.safe_load(METADATA.read_text())
    served = served or catalog.load()
    tables = metadata.setdefault("databases", {}).setdefault(DATABASE, {}).setdefault("tables", {})
    for name, generated in served.datasette_tables().items():
        tables[name] = {**tables.get(name, {}), **generated}
    return metadata


def make_datasette(sqlite_path: str | Path, dbt_docs_dir: str | Path | None = None) -> Datasette:
    """Datasette over `sqlite_path` (created empty if missing), named `pulse`, read-only.

    `dbt_docs_dir`: the folder served at /dbt-docs/ (default: where the `docs` job writes,
    serving/dbt_docs.py `target_dir`)."""
    sqlite_path = Path(sqlite_path)
    ensure_sqlite(sqlite_path)
    _quiet_datasette_errors()
    served = catalog.load()
    CHARTS.use(served)
    ds = Datasette(metadata=load_metadata(served), settings=SETTINGS)
    # The health thresholds, read now so that a bad environment variable stops the start.
    ds._pulse_thresholds = Thresholds.from_env()
    ds._pulse_dbt_docs = Path(dbt_docs_dir) if dbt_docs_dir else target_dir(config.home())
    # is_mutable: the file changes (never `immutable`); Datasette reads it with mode=ro.
    ds.add_database(Database(ds, path=str(sqlite_path), is_mutable=True), name=DATABASE)
    return ds


def serve(sqlite_path: str | Path, host: str, port: int, ssl_keyfile=None, ssl_certfile=None):
    import uvicorn

    ds = make_datasette(sqlite_path)
    asyncio.run(ds.invoke_startup())
    # This thread runs the event loop: Forage's answers first on the CPU (cpu_priority.py).
    print(f"pulse serve: {favour_event_loop()}", flush=True)
    uvicorn.run(
        ds.app(),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        ssl_keyfile=ssl_keyfile,
        ssl_certfile=ssl_certfile,
    )
