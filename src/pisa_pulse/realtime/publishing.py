"""The publisher as the loop uses it: the serving views' plans prepared once per connection.

Every serving view is "state + tail", and the tail goes through the whole per-student index
logic (a wide view over a dozen joins), so PostgreSQL spends 130-250 ms *planning* each view
and a few ms running it (measured: forage_escs 256 ms plain, 1-7 ms as a prepared statement).
Publishing four such views after every loader tick would cost about a second of planning.
A prepared statement keeps the plan: the tail's bound (`_load_seq > max(mark)`) is an
InitPlan evaluated at execution time, so the cached plan stays right as the state moves,
and PostgreSQL re-plans by itself when dbt replaces a view.
"""

from __future__ import annotations

from pisa_pulse.serving import catalog
from pisa_pulse.serving.publisher import Publisher


class PreparedPublisher(Publisher):
    """The serving publisher, reading each mart through a statement prepared once per
    connection (see the module docstring for why)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._prepared_on = None  # the connection the statements below were prepared on
        self._prepared: dict[str, str] = {}

    def _select(self, cur, table: str) -> None:
        if cur.connection is not self._prepared_on:  # reconnected: nothing is prepared there
            self._prepared_on, self._prepared = cur.connection, {}
        name = self._prepared.get(table)
        if name is None:
            name = f"pulse_publish_{len(self._prepared)}"
            cur.execute(f"prepare {name} as select * from {self.relation(table)}")
            self._prepared[table] = name
        cur.execute(f"execute {name}")


class SplitPublisher:
    """Two publishers on one SQLite file: the marts served `every_publication` (what Forage
    polls, and the lag it reports) on every call; the `analyst_interval` ones (a few seconds
    old is fine, and country_profile computes every index of the tail; the snapshot) at most
    every `slow_interval` seconds. Which is which: dbt's manifest (serving/catalog.py). Each
    writes its own tables in its own transaction."""

    def __init__(
        self,
        warehouse_url: str,
        sqlite_path,
        slow_interval: float = 10.0,
        served: catalog.Catalog | None = None,
    ):
        import time

        served = served or catalog.load()
        self._clock = time.monotonic
        self.fast = PreparedPublisher(
            warehouse_url, sqlite_path, tables=served.every_publication(), served=served
        )
        self.slow = PreparedPublisher(
            warehouse_url, sqlite_path, tables=served.analyst_interval(), served=served
        )
        self.slow_interval = slow_interval
        self._slow_at = float("-inf")

    def publish_once(self) -> bool:
        changed = self.fast.publish_once()
        if self._clock() - self._slow_at >= self.slow_interval:
            self._slow_at = self._clock()
            changed = self.slow.publish_once() or changed
        return changed

    def close(self) -> None:
        self.fast.close()
        self.slow.close()
