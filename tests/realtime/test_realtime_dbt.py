"""The in-process dbt runner (pisa_pulse.core.dbt.DbtSession) on a tiny real dbt project."""

from __future__ import annotations

import textwrap

import psycopg2
import pytest

from pisa_pulse.core.dbt import DbtSession

STATE_SQL = """
{{ config(materialized='incremental', tags=['realtime']) }}
-- one row per batch: the rows beyond the previous high-water mark, summed
select count(*) as n, coalesce(sum(x), 0) as sx, max(_load_seq) as hwm
from {{ source('raw', 'events') }}
{% if is_incremental() %}
where _load_seq > (select coalesce(max(hwm), 0) from {{ this }})
{% endif %}
having count(*) > 0
"""

TOTALS_SQL = """
{{ config(materialized='view', tags=['serving']) }}
select coalesce(sum(n), 0) as n, coalesce(sum(sx), 0) as sx from {{ ref('state') }}
"""


@pytest.fixture
def toy_project(tmp_path):
    project = tmp_path / "toy"
    (project / "models").mkdir(parents=True)
    (project / "dbt_project.yml").write_text(
        textwrap.dedent(
            """
            name: toy
            version: "0.1.0"
            config-version: 2
            profile: pisa_pulse
            model-paths: ["models"]
            """
        )
    )
    (project / "models" / "sources.yml").write_text(
        "version: 2\nsources:\n  - name: raw\n    schema: raw\n    tables:\n      - name: events\n"
    )
    (project / "models" / "state.sql").write_text(STATE_SQL)
    (project / "models" / "totals.sql").write_text(TOTALS_SQL)
    return project


def _raw(url: str) -> psycopg2.extensions.connection:
    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(
            "create schema if not exists raw;"
            "create table if not exists raw.events("
            " _load_seq bigserial primary key, x bigint not null)"
        )
    return conn


def _insert(conn, values) -> None:
    with conn.cursor() as cur:
        cur.executemany("insert into raw.events(x) values (%s)", [(v,) for v in values])


def _totals(conn) -> tuple[int, int]:
    with conn.cursor() as cur:
        cur.execute("select n, sx from analytics.totals")
        n, sx = cur.fetchone()
        return int(n), int(sx)


def _session(url, project, tmp_path, **kw) -> DbtSession:
    return DbtSession(
        url,
        target_path=tmp_path / "target",
        log_path=tmp_path / "logs",
        project_dir=project,
        **kw,
    )


def test_ticks_reuse_one_parse_and_stay_exact(fresh_db, toy_project, tmp_path):
    from dbt.adapters.base import impl

    url = fresh_db("rt_dbt")
    conn = _raw(url)
    session = _session(url, toy_project, tmp_path)
    try:
        assert session.invoke(["run"]).success  # first build: table + view
        flags_before = len(impl.DEFAULT_BASE_BEHAVIOR_FLAGS)
        expected_n = expected_sx = 0
        for i in range(25):
            batch = list(range(i, i + i % 4))  # some ticks bring no rows
            _insert(conn, batch)
            expected_n, expected_sx = expected_n + len(batch), expected_sx + sum(batch)
            result = session.tick()
            assert result.success, result.error
            assert result.nodes == 1  # tag:realtime selects the state model only
            assert _totals(conn) == (expected_n, expected_sx)
        # One parse for all of it, and dbt-adapters#2136 neutralised: no flag per invocation.
        assert session.recycles == 0 and session.invocations == 26
        # (<=: whether the last invocation re-appended its one flag depends on what ran
        # before in this process; without the fix the list would have grown by 25.)
        assert len(impl.DEFAULT_BASE_BEHAVIOR_FLAGS) <= flags_before
    finally:
        session.close()
        conn.close()


def test_recycling_reparses_and_keeps_going(fresh_db, toy_project, tmp_path):
    url = fresh_db("rt_dbt")
    conn = _raw(url)
    session = _session(url, toy_project, tmp_path, recycle_every=4)
    try:
        assert session.invoke(["run"]).success
        first_manifest = session.manifest
        for i in range(10):
            _insert(conn, [i])
            assert session.tick().success
        assert session.recycles == 2  # after invocations 4 and 8 (the run counts as one)
        assert session.manifest is not first_manifest
        assert _totals(conn) == (10, sum(range(10)))
    finally:
        session.close()
        conn.close()


def test_two_warehouses_one_after_the_other(fresh_db, toy_project, tmp_path):
    """dbt keeps one adapter per process: a session must not write into another's database."""
    urls = [fresh_db("rt_dbt_a"), fresh_db("rt_dbt_b")]
    conns = [_raw(u) for u in urls]
    try:
        for k, (url, conn) in enumerate(zip(urls, conns, strict=True)):
            _insert(conn, [10 * (k + 1)] * (k + 1))
            session = _session(url, toy_project, tmp_path / str(k))
            try:
                assert session.invoke(["run"]).success
            finally:
                session.close()
        assert _totals(conns[0]) == (1, 10)
        assert _totals(conns[1]) == (2, 40)
    finally:
        for conn in conns:
            conn.close()


def test_failed_invocation_is_reported_not_raised(fresh_db, toy_project, tmp_path):
    url = fresh_db("rt_dbt")
    session = _session(url, toy_project, tmp_path)  # no raw.events table: the run must fail
    try:
        result = session.tick()
        assert not result.success
        assert result.failures or result.error
    finally:
        session.close()
