"""HOMEPOS scoring cost per row inside the warehouse: the bare WLE, cache misses, cache hits.

Needs a warehouse where dbt has run (functions from the on-run-start hook and the model
int_homepos_params): the configured one, or --url. The rows are real FRA/ITA/MEX answer
patterns drawn with repetition, as the simulator streams them. Cache keys are prefixed with a
run id, so the run starts cold without touching the live cache, and removes its keys after.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid

import numpy as np
import psutil
import psycopg2
import psycopg2.errors

from pisa_pulse.bench import common
from pisa_pulse.core import config
from pisa_pulse.indices.homepos_model import score_rows

HELP = "HOMEPOS per-row scoring cost in Postgres: bare WLE, cold (cache miss), warm (hit)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", help="warehouse URL (default: the configured warehouse)")
    p.add_argument("--rows", type=int, default=3000, help="rows per measurement")
    p.add_argument("--no-save", action="store_true", help="do not write docs/bench/homepos.json")


def _patterns(n: int, rng: np.random.Generator) -> list[tuple[str, str]]:
    """(country, 25-character pattern) of n real rows drawn with repetition."""
    from pisa_pulse.loader.raw_fixture import (
        pool_rows,
    )  # the real rows, as the test fixtures read them

    rows = pool_rows()
    scores = score_rows(rows)
    text = ["".join("." if s < 0 else str(s) for s in row) for row in scores]
    picks = rng.integers(0, len(rows), n)
    return [(rows[i]["CNT"], text[i]) for i in picks]


class _Clock:
    """Wall time and the server backend's CPU time (robust when the machine is shared)."""

    def __init__(self, backend_pid: int):
        self.backend = psutil.Process(backend_pid)
        self.wall = self.cpu = 0.0

    def run(self, cur, sql: str, args=()) -> None:
        cpu0, wall0 = sum(self.backend.cpu_times()[:2]), time.perf_counter()
        cur.execute(sql, args)
        cur.fetchall()
        self.wall += time.perf_counter() - wall0
        self.cpu += sum(self.backend.cpu_times()[:2]) - cpu0

    def per_row(self, rows: int) -> dict[str, float]:
        return {
            "wall_ms": round(1000 * self.wall / rows, 4),
            "cpu_ms": round(1000 * self.cpu / rows, 4),
        }


def run(args: argparse.Namespace) -> int:
    try:
        url = args.url or config.load().warehouse_url
    except config.NotConfigured:
        print("skipped: needs a warehouse where dbt has run (`make run`, or --url)")
        return 0
    rng = np.random.default_rng(2018)
    stream = _patterns(args.rows, rng)
    distinct = sorted(set(stream))
    run_id = f"bench-{uuid.uuid4().hex[:8]}-"
    conn = psycopg2.connect(url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("set jit = off")
            cur.execute(
                "create temp table bench_rows (n serial, cnt text, pattern text);"
                "create temp table bench_distinct (n serial, cnt text, pattern text);"
            )
            cur.executemany("insert into bench_rows (cnt, pattern) values (%s, %s)", stream)
            cur.executemany("insert into bench_distinct (cnt, pattern) values (%s, %s)", distinct)
            cur.execute("analyze bench_rows; analyze bench_distinct")
            score = (
                "select reference.homepos_score(%s || p.param_version, p.item_a, p.item_c,"
                " p.item_ncat, r.pattern) from {table} as r"
                " join intermediate.int_homepos_params as p on p.cnt = r.cnt"
            )
            cur.execute("select pg_backend_pid()")
            pid = cur.fetchone()[0]
            bare, cold, stream_clock, warm = (_Clock(pid) for _ in range(4))
            bare.run(
                cur,
                "select reference.homepos_wle(p.item_a, p.item_c, p.item_ncat, r.pattern)"
                " from bench_distinct as r join intermediate.int_homepos_params as p"
                " on p.cnt = r.cnt",
            )
            # Every distinct pattern once, with keys nobody has cached: all misses.
            cold.run(cur, score.format(table="bench_distinct"), (run_id + "cold-",))
            # Each statement sees the cache as it was when it started: score the stream in
            # chunks of one loader tick (100 rows) so later chunks hit what earlier ones wrote.
            chunk = 100
            for start in range(0, len(stream), chunk):
                stream_clock.run(
                    cur,
                    score.format(table="bench_rows") + " where r.n > %s and r.n <= %s",
                    (run_id, start, start + chunk),
                )
            warm.run(cur, score.format(table="bench_rows"), (run_id,))
            cur.execute(
                "delete from reference.homepos_wle_cache where param_version like %s",
                (run_id + "%",),
            )
    except (psycopg2.errors.UndefinedFunction, psycopg2.errors.UndefinedTable) as exc:
        print(f"skipped: run dbt on this warehouse first ({exc.pgerror.splitlines()[0]})")
        return 0
    finally:
        conn.close()
    result = {
        "rows": len(stream),
        "distinct_patterns": len(distinct),
        "stream_hit_share": round(1 - len(distinct) / len(stream), 3),
        "bare_wle_per_row": bare.per_row(len(distinct)),
        "cold_per_row": cold.per_row(len(distinct)),
        "stream_per_row": stream_clock.per_row(len(stream)),
        "warm_per_row": warm.per_row(len(stream)),
    }
    for key, value in result.items():
        print(f"{key:24} {value}")
    if not args.no_save:
        print(f"saved {common.save('homepos', result)}", file=sys.stderr)
    return 0
