"""Shared fixtures: a real PostgreSQL started for the test session on a free port.

Set PULSE_TEST_PG_URL=postgresql://user@host:port to use an existing server instead.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest

from pisa_pulse.core import config
from pisa_pulse.core.cluster import Cluster, find_pg_bin, free_port
from tests.support.databases import create_database


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory) -> str:
    """Base URL (no database) of a PostgreSQL server for this test session."""
    existing = os.environ.get("PULSE_TEST_PG_URL")
    if existing:
        yield existing.rstrip("/")
        return
    # Outside pytest's tmp rotation: a concurrent pytest run may delete old basetemps.
    home = Path(tempfile.mkdtemp(prefix="pulse-test-pg-"))
    # Fast settings (fsync off): see pisa_pulse.core.cluster.FAST_SETTINGS.
    cluster = Cluster(home / "pg", free_port(), find_pg_bin(), durable=False)
    cluster.start()
    yield f"postgresql://postgres@127.0.0.1:{cluster.port}"
    cluster.destroy()
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def fresh_db(pg_server):
    """A factory for fresh, uniquely named databases on the test server."""

    def make(prefix: str = "t") -> str:
        return create_database(pg_server, f"{prefix}_{uuid.uuid4().hex[:8]}")

    return make


@pytest.fixture
def pulse_env(pg_server, tmp_path, monkeypatch):
    """A private Pulse world: its own data folder, warehouse database and sources prefix.

    Source databases are named `<prefix>_<country>` so tests can run side by side on
    one server without seeing each other's countries.
    """
    prefix = f"s{uuid.uuid4().hex[:6]}"
    warehouse = create_database(pg_server, f"{prefix}_warehouse")
    monkeypatch.setenv("PULSE_HOME", str(tmp_path / "pulse_home"))
    monkeypatch.setenv("PULSE_WAREHOUSE_URL", warehouse)
    monkeypatch.setenv("PULSE_SOURCE_URL_TEMPLATE", f"{pg_server}/{prefix}_{{country}}")
    settings = config.load()
    settings.test_prefix = prefix  # type: ignore[attr-defined]
    return settings


def pytest_collection_modifyitems(config, items):
    """Tests that need the PostgreSQL server are `integration`; `make test-fast` skips them
    (and the browser and slow ones) for a unit-only run in seconds."""
    for item in items:
        if "pg_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)
