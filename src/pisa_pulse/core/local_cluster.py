"""The local PostgreSQL cluster under the data folder (`pulse db start`, `pulse up`)."""

from __future__ import annotations

from pathlib import Path

import psycopg2

from pisa_pulse.core import config
from pisa_pulse.core.cluster import Cluster, embedded_pg_bin, find_pg_bin, free_port


def local_cluster(port: int | None = None, embedded: bool = False) -> Cluster:
    state = config.read_state()
    if embedded:
        bin_dir = embedded_pg_bin()
    else:
        bin_dir = Path(state["pg_bin"]) if "pg_bin" in state else find_pg_bin()
    return Cluster(
        data_dir=config.home() / "pg",
        port=port or state.get("pg_port") or free_port(),
        bin_dir=bin_dir,
    )


def ensure_database(admin_url: str, name: str) -> None:
    conn = psycopg2.connect(admin_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("select 1 from pg_database where datname = %s", (name,))
        if not cur.fetchone():
            cur.execute(f'create database "{name}"')
    conn.close()


def start_local(port: int | None = None, embedded: bool = False) -> Cluster:
    """Start (initialising if needed) the local cluster and create the warehouse database."""
    cluster = local_cluster(port, embedded)
    if cluster.is_running():
        return cluster
    if port is None:
        cluster.port = free_port()  # the previous port may be taken by now
    cluster.start()
    config.write_state(
        pg_port=cluster.port,
        pg_bin=str(cluster.bin_dir),
        pg_data=str(cluster.data_dir),
        pg_pid=cluster.pid(),
    )
    ensure_database(cluster.url("postgres"), config.WAREHOUSE_DB)
    return cluster
