"""Per-row warehouse cost of the live index path (issue 12): EXPLAIN ANALYZE medians.

    python -m pisa_pulse.bench.live_cost postgresql://postgres@127.0.0.1:PORT [--project DIR]

Builds a fresh database `bench_live_<tag>` on that server from the real rows of
data/pisa2018 (each row `--copies` times, every copy a distinct student so that no cache sees
a row twice), runs `dbt seed` and the models up to int_student_indices with the dbt project in
DIR (default: this repository; point it at an exported older commit to compare), then times
`select * from <view> where _load_seq > 0` for int_student_indices_live and
stg_pisa__responses: EXPLAIN (ANALYZE, TIMING OFF) execution time, median of `--repeat`
runs, divided by the number of rows. The HOMEPOS pattern cache is warm (filled by a first run)
unless `--cold` empties it before every run (the Warm WLE then dominates).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

import psycopg2

from pisa_pulse.core import config
from pisa_pulse.loader.raw_fixture import create_raw_schema, insert_pool_rows, pool_rows

VIEWS = ("intermediate.int_student_indices_live", "staging.stg_pisa__responses")


def _dbt(project: Path, url: str, work: Path, *args: str) -> None:
    env = {**os.environ, **config.dbt_env(url), "DBT_PROFILES_DIR": str(project)}
    env.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    cmd = [str(Path(sys.executable).with_name("dbt")), *args, "--project-dir", str(project)]
    cmd += ["--target-path", str(work / "target"), "--log-path", str(work / "logs")]
    result = subprocess.run(cmd, env=env, text=True, capture_output=True)
    if result.returncode:
        sys.exit(result.stdout[-5000:] + result.stderr[-3000:])


def build(server: str, db: str, project: Path, copies: int) -> str:
    admin = psycopg2.connect(f"{server}/postgres")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'drop database if exists "{db}" with (force)')
        cur.execute(f'create database "{db}"')
        cur.execute(f'alter database "{db}" set jit = off')
    admin.close()
    url = f"{server}/{db}"
    conn = psycopg2.connect(url)
    create_raw_schema(conn)
    rows = pool_rows()
    for k in range(copies):
        batch = [
            dict(r, _id=k * 100_000 + i + 1, CNTSTUID=f"{k + 1}{r['CNTSTUID']}")
            for i, r in enumerate(rows)
        ]
        # Italy's and Mexico's rows without official BELONG, as in the indices tests
        insert_pool_rows(conn, [r for r in batch if r["CNT"] == "FRA"])
        insert_pool_rows(conn, [r for r in batch if r["CNT"] != "FRA"], drop_official=("belong",))
    with conn.cursor() as cur:
        cur.execute("analyze raw.responses")
    conn.commit()
    conn.close()
    work = Path(f"/tmp/pulse-bench-live-{db}")
    _dbt(project, url, work, "seed")
    _dbt(project, url, work, "run", "--select", "+int_student_indices")
    return url


def execution_ms(cur, sql: str) -> float:
    cur.execute("explain (analyze, timing off, format json) " + sql)
    return cur.fetchone()[0][0]["Execution Time"]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("server", help="server URL without a database")
    ap.add_argument("--project", type=Path, default=config.REPO_ROOT)
    ap.add_argument("--tag", default="current")
    ap.add_argument("--copies", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--reuse", action="store_true", help="the database is already built")
    ap.add_argument("--cold", action="store_true", help="empty the HOMEPOS WLE cache each run")
    a = ap.parse_args(argv)
    server = a.server.rstrip("/")
    db = f"bench_live_{a.tag}"
    url = f"{server}/{db}" if a.reuse else build(server, db, a.project, a.copies)
    conn = psycopg2.connect(url)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("select count(*) from raw.responses")
    n = cur.fetchone()[0]
    for view in VIEWS:
        sql = f"select * from {view} where _load_seq > 0"
        execution_ms(cur, sql)  # warm: pages, and the HOMEPOS pattern cache
        times = []
        for _ in range(a.repeat):
            if a.cold:
                cur.execute("truncate reference.homepos_wle_cache")
            times.append(execution_ms(cur, sql))
        median = statistics.median(times)
        print(
            f"{a.tag}{' cold' if a.cold else ''} {view}: {n} rows, median {median:.0f} ms"
            f" = {median / n:.3f} ms a row (runs: {', '.join(f'{t:.0f}' for t in times)})"
        )
    conn.close()


if __name__ == "__main__":
    main()
