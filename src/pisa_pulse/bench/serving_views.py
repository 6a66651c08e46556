"""Serving views (state + tail) query time at 10,000 and 600,000 rows: it must not grow.

For each size the warehouse holds that many rows in raw.responses, the marts' additive state
covers all but a small tail (default 100 rows), and every `marts.forage_*` view is queried
with EXPLAIN ANALYZE: planning and execution time, median of --repeat runs.

How the rows are made: the 1,269 real rows go through dbt once (staging, indices, state);
larger sizes are copies of them under new ids and new `_load_seq`, added to raw.responses
*and* to int_student_indices (the copy of each student's computed row, which is what dbt
would compute from the same answers: scoring 600,000 HOMEPOS patterns would take tens of
minutes here and is not what this measures). The state models then run incrementally over
the copies, and the tail is real rows that only the views' tail sees.

Without --server a private PostgreSQL is started in a temporary folder and stopped after.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import psycopg2

from pisa_pulse.bench import common
from pisa_pulse.core.cluster import Cluster, find_pg_bin, free_port
from pisa_pulse.core.config import REPO_ROOT
from pisa_pulse.core.dbt import run_dbt
from pisa_pulse.loader.columns import LOADER_MANAGED

HELP = "serving views (state + tail): query time at 10k and 600k rows must not grow"
VIEWS = (
    "forage_submissions",
    "forage_submissions_over_time",
    "forage_learning_hours",
    "forage_escs",
    "forage_early_education_belonging",
)
KEY_COLUMNS = LOADER_MANAGED  # cnt, id, created_at, _loaded_at, _load_seq
COPY_ID_STRIDE = 1_000_000  # copy k of real row i gets id k * stride + i


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", help="postgresql://user@host:port of a server to use")
    p.add_argument("--sizes", default="10000,600000", help="rows in raw.responses")
    p.add_argument("--tail", type=int, default=100, help="rows beyond the state's mark")
    p.add_argument("--repeat", type=int, default=15, help="EXPLAIN ANALYZE runs per view")


def _columns(cur, schema: str, table: str) -> list[str]:
    cur.execute(
        "select column_name from information_schema.columns"
        " where table_schema = %s and table_name = %s order by ordinal_position",
        (schema, table),
    )
    return [r[0] for r in cur.fetchall()]


def _grow(conn, target_rows: int) -> None:
    """Add copies of the real rows to raw.responses and int_student_indices up to target."""
    with conn.cursor() as cur:
        cur.execute("select count(*) from raw.responses")
        missing = target_rows - cur.fetchone()[0]
        if missing <= 0:
            return
        raw_cols = [c for c in _columns(cur, "raw", "responses") if c not in KEY_COLUMNS]
        int_cols = [
            c for c in _columns(cur, "intermediate", "int_student_indices") if c not in KEY_COLUMNS
        ]
        cur.execute("select coalesce(max(id / %s), 0) from raw.responses", (COPY_ID_STRIDE,))
        first_copy = cur.fetchone()[0] + 1
        raw_list = ", ".join(f'r."{c}"' for c in raw_cols)
        cur.execute(
            f"""
            create temp table copies on commit drop as
            select r.cnt, k * {COPY_ID_STRIDE} + r.id as id, r.id as original_id,
                   now() - random() * interval '24 hours' as created_at,
                   nextval('raw.load_seq') as _load_seq
            from generate_series(%s, %s) as k
            cross join (select * from raw.responses where id < {COPY_ID_STRIDE}) as r
            order by k, r.id
            limit %s
            """,
            (first_copy, first_copy + missing // 1269 + 1, missing),
        )
        cur.execute(
            f"""
            insert into raw.responses (cnt, id, created_at, _load_seq, {", ".join(raw_cols)})
            select c.cnt, c.id, c.created_at, c._load_seq, {raw_list}
            from copies as c
            join raw.responses as r on r.cnt = c.cnt and r.id = c.original_id
            """
        )
        int_list = ", ".join(f'i."{c}"' for c in int_cols)
        cur.execute(
            f"""
            insert into intermediate.int_student_indices
                (cnt, id, created_at, _loaded_at, _load_seq, {", ".join(int_cols)})
            select c.cnt, c.id, c.created_at, now(), c._load_seq, {int_list}
            from copies as c
            join intermediate.int_student_indices as i
                on i.cnt = c.cnt and i.id = c.original_id
            """
        )
    conn.commit()
    with conn.cursor() as cur:
        conn.autocommit = True
        cur.execute("vacuum analyze raw.responses")
        cur.execute("vacuum analyze intermediate.int_student_indices")
        conn.autocommit = False


def _add_tail(conn, n: int, offset: int) -> None:
    """n real rows under new ids, beyond the state's mark (no dbt run after them)."""
    with conn.cursor() as cur:
        cols = [c for c in _columns(cur, "raw", "responses") if c not in ("id", "_load_seq")]
        cols = [c for c in cols if c != "_loaded_at"]
        col_list = ", ".join(f'"{c}"' for c in cols)
        cur.execute(
            f"insert into raw.responses (id, {col_list})"
            f" select id + %s, {col_list} from raw.responses where id <= %s order by id",
            (offset, n),
        )
    conn.commit()


def _explain(cur, view: str) -> tuple[float, float]:
    cur.execute(
        f"explain (analyze, timing off, summary on, format json) select * from marts.{view}"
    )
    plan = cur.fetchone()[0][0]
    return plan["Planning Time"], plan["Execution Time"]


def _measure(conn, repeat: int) -> dict[str, dict[str, float]]:
    out = {}
    with conn.cursor() as cur:
        for view in VIEWS:
            _explain(cur, view)  # warm the caches
            runs = [_explain(cur, view) for _ in range(repeat)]
            out[view] = {
                "planning_ms": round(statistics.median(p for p, _ in runs), 2),
                "execution_ms": round(statistics.median(e for _, e in runs), 2),
            }
    conn.rollback()
    return out


def _check_count(conn) -> None:
    with conn.cursor() as cur:
        cur.execute("select count from marts.forage_submissions")
        served = cur.fetchone()[0]
        cur.execute("select count(*) from raw.responses")
        raw = cur.fetchone()[0]
    conn.rollback()
    if served != raw:
        raise RuntimeError(f"forage_submissions says {served}, raw.responses holds {raw}")


def _bench(server: str, sizes: list[int], tail: int, repeat: int, work: Path) -> dict:
    from pisa_pulse.loader.raw_fixture import create_raw_schema, insert_pool_rows

    name = f"bench_serving_{uuid.uuid4().hex[:6]}"
    admin = psycopg2.connect(f"{server}/postgres")
    admin.autocommit = True
    admin.cursor().execute(f'create database "{name}"')
    url = f"{server}/{name}"
    conn = psycopg2.connect(url)
    create_raw_schema(conn)
    insert_pool_rows(conn)

    def dbt(*args: str) -> None:
        run_dbt(list(args), url, target_path=work / "target", log_path=work / "logs")

    states = "int_student_indices country_index_state submission_minute_state"
    started = time.perf_counter()
    dbt("seed")
    dbt("run")
    print(f"  real rows through dbt: {time.perf_counter() - started:.0f} s")
    results = {}
    for k, size in enumerate(sizes):
        dbt("run", "--select", states)  # absorb the previous tail into the state
        started = time.perf_counter()
        _grow(conn, size - tail)
        dbt("run", "--select", "country_index_state submission_minute_state")
        build_s = time.perf_counter() - started
        _add_tail(conn, tail, offset=900_000 + k * 10_000)
        _check_count(conn)
        results[size] = {"state_build_s": round(build_s, 1), "views": _measure(conn, repeat)}
        print(f"  {size:>8,} rows (tail {tail}): state built in {build_s:.1f} s")
        for view, m in results[size]["views"].items():
            print(
                f"    {view:<36} plan {m['planning_ms']:7.2f} ms  exec {m['execution_ms']:7.2f} ms"
            )
    conn.close()
    admin.cursor().execute(f'drop database "{name}" with (force)')
    admin.close()
    return results


def run(args: argparse.Namespace) -> int:
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="pulse_bench_serving_") as tmp:
        work = Path(tmp)
        cluster = None
        server = args.server
        if not server:
            cluster = Cluster(data_dir=work / "pg", port=free_port(), bin_dir=find_pg_bin())
            cluster.start()
            server = f"postgresql://postgres@127.0.0.1:{cluster.port}"
        try:
            results = _bench(server, sizes, args.tail, args.repeat, work)
        finally:
            if cluster:
                cluster.stop("fast")
    small, large = results[sizes[0]], results[sizes[-1]]
    ratios = {
        v: round(
            (large["views"][v]["planning_ms"] + large["views"][v]["execution_ms"])
            / (small["views"][v]["planning_ms"] + small["views"][v]["execution_ms"]),
            2,
        )
        for v in VIEWS
    }
    print("  total (plan + exec) ratio, largest / smallest size:")
    for view, ratio in ratios.items():
        print(f"    {view:<36} {ratio:.2f}x")
    path = common.save(
        "serving_views",
        {
            "tail_rows": args.tail,
            "repeat": args.repeat,
            "sizes": {str(k): v for k, v in results.items()},
            "ratio_largest_to_smallest": ratios,
        },
    )
    print(f"  written to {path.relative_to(REPO_ROOT)}")
    # Generous bound: noise on a shared 2-core machine, not growth with the row count.
    return 0 if all(r <= 2.0 for r in ratios.values()) else 1
