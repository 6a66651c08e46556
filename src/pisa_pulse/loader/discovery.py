"""Which application databases exist: the configured list, or those found on the server."""

from __future__ import annotations

import psycopg2

from pisa_pulse.core import codebook
from pisa_pulse.core.config import Settings


def discover(settings: Settings) -> list[str]:
    """Upper-case codes of the codebook countries whose database exists on the source server."""
    wanted = {settings.source_database(cnt): cnt.upper() for cnt in codebook.countries()}
    conn = psycopg2.connect(settings.admin_url, connect_timeout=3, application_name="pulse-loader")
    try:
        with conn.cursor() as cur:
            cur.execute(
                "select datname from pg_database where datname = any(%s) and datallowconn",
                (list(wanted),),
            )
            return sorted(wanted[name] for (name,) in cur.fetchall())
    finally:
        conn.close()
