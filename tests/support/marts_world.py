"""A warehouse database for the marts tests: real rows, the dbt project, and helpers.

Each test module makes its own world (fresh database, private dbt target and log paths).
Rows are the real PISA 2018 rows of data/pisa2018/, loaded by loader/raw_fixture.py, with
`created_at` spread over the last 25 hours so that both time windows of the
submissions-over-time chart have something to count.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import psycopg2.extras

from pisa_pulse.core.dbt import DbtSession, run_dbt
from pisa_pulse.loader.raw_fixture import create_raw_schema, insert_pool_rows
from tests.support.databases import create_database

REALTIME = ["run", "--select", "tag:realtime"]


@dataclass
class MartsWorld:
    server: str
    url: str
    target: Path
    logs: Path

    @classmethod
    def create(cls, server: str, tmp: Path, prefix: str = "marts") -> MartsWorld:
        url = create_database(server, f"{prefix}_{uuid.uuid4().hex[:8]}")
        world = cls(server=server, url=url, target=tmp / "target", logs=tmp / "logs")
        conn = world.connect()
        create_raw_schema(conn)
        conn.close()
        return world

    def session(self) -> DbtSession:
        """An in-process dbt runner (parse once): a tick costs ~1 s instead of ~8 s."""
        if getattr(self, "_session", None) is None:
            self._session = DbtSession(self.url, target_path=self.target, log_path=self.logs)
        return self._session

    def dbt_in_process(self, *args: str) -> None:
        result = self.session().invoke(list(args))
        assert result.success and not result.failures, (args, result.error, result.failures)

    def close(self) -> None:
        if getattr(self, "_session", None) is not None:
            self._session.close()
            self._session = None

    def connect(self):
        return psycopg2.connect(self.url)

    def dbt(self, *args: str):
        return run_dbt(list(args), self.url, target_path=self.target, log_path=self.logs)

    def query(self, sql: str, params=None) -> list[dict]:
        conn = self.connect()
        try:
            with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                cur.execute(sql, params)
                return [dict(r) for r in cur.fetchall()]
        finally:
            conn.close()

    def texts(self, relation: str, columns: str = "*") -> list[str]:
        """Every row of `relation` as Postgres' own text, sorted: a digit-for-digit image."""
        rows = self.query(f"select t::text as r from (select {columns} from {relation}) as t")
        return sorted(r["r"] for r in rows)

    def execute(self, sql: str, params=None) -> None:
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
            conn.commit()
        finally:
            conn.close()

    def insert(
        self, rows: list[dict], drop_official: tuple[str, ...] = (), verbatim: bool = False
    ) -> None:
        """Insert real rows (with `_id`) as the loader would, then spread their created_at.

        `drop_official` names official index columns stored as 'NA'; with `verbatim` the
        values are stored as given (raw_fixture.insert_pool_rows)."""
        before = self.query("select coalesce(max(_load_seq), 0) as m from raw.responses")[0]["m"]
        conn = self.connect()
        insert_pool_rows(conn, rows, drop_official=drop_official, verbatim=verbatim)
        conn.close()
        self.execute(
            """
            update raw.responses
            set created_at = date_trunc('second', now())
                - make_interval(mins => ((id * 7919) %% 1500)::int, secs => (id %% 60)::int)
            where _load_seq > %s
            """,
            (before,),
        )

    def delete(self, where: str, params=None) -> int:
        """Remove rows and write their tombstones in one transaction, as the loader does."""
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(
                    f"""
                    with gone as (
                        delete from raw.responses where {where} returning cnt, id
                    )
                    insert into raw.responses_deleted (cnt, id) select cnt, id from gone
                    """,
                    params,
                )
                n = cur.rowcount
            conn.commit()
            return n
        finally:
            conn.close()

    def copy_to(self, name_prefix: str) -> MartsWorld:
        """A copy of this database (CREATE DATABASE … TEMPLATE), with private dbt paths."""
        name = f"{name_prefix}_{uuid.uuid4().hex[:8]}"
        source = self.url.rsplit("/", 1)[1]
        admin = psycopg2.connect(f"{self.server}/postgres")
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(
                "select pg_terminate_backend(pid) from pg_stat_activity where datname = %s",
                (source,),
            )
            cur.execute(f'create database "{name}" template "{source}"')
        admin.close()
        return MartsWorld(
            server=self.server,
            url=f"{self.server}/{name}",
            target=self.target.with_name(self.target.name + "_" + name_prefix),
            logs=self.logs.with_name(self.logs.name + "_" + name_prefix),
        )


# The serving views' figures recomputed directly from every live row, independently of the
# marts' macros: the "correct summary data" of docs/forage-charts.md.
DIRECT_MEANS_SQL = """
with students as (
    select * from intermediate.int_student_indices_live
),
pieces as (
    select
        cnt,
        count(*) as submissions,
        count({x}) as n,
        sum(w_fstuwt::numeric * {x}::numeric) filter (where w_fstuwt > 0) as swx,
        sum(w_fstuwt::numeric) filter (where w_fstuwt > 0 and {x} is not null) as sw,
        sum({x}::numeric) as sx
    from students
    group by cnt
)
select
    cnt,
    submissions,
    n,
    coalesce(swx / nullif(sw, 0), sx / nullif(n, 0)) as mean_numeric,
    coalesce(swx / nullif(sw, 0), sx / nullif(n, 0))::double precision as mean,
    case when n > 0 then coalesce(sw, 0) > 0 end as weighted
from pieces
"""


def direct_means(world: MartsWorld, index: str) -> dict[str, dict]:
    return {r["cnt"]: r for r in world.query(DIRECT_MEANS_SQL.format(x=index))}
