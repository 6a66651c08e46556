"""A whole Pulse stack for the real-time benchmarks, on clusters of its own in a tmp folder.

Application databases and the warehouse on one fresh PostgreSQL; `pulse run` and
`pulse serve` as subprocesses (as `make run` starts them); a simulator Stream in this
process for the background load; marker submissions whose effect on Forage's JSON is known.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import psycopg2

from pulse import config
from pulse.cluster import Cluster, find_pg_bin, free_port
from pulse.realtime.probe import forage_json, source_total, wait_for

# Marker countries get no background rows, so any change in their numbers is a marker's.
MARKER_COUNTRIES = ["ISL", "MLT", "LUX"]


def _pulse(*args: str) -> list[str]:
    return [sys.executable, "-m", "pulse.cli", *args]


@dataclass
class Stack:
    countries: list[str]  # background-load countries (upper-case)
    backfill: int = 10_000
    keep: bool = False
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="pulse-bench-")))
    cluster: Cluster | None = None
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    url: str = ""
    _stream: object = None  # see attach()
    _base: int = 0
    _markers: int = 0

    @property
    def all_countries(self) -> list[str]:
        return self.countries + MARKER_COUNTRIES

    def start(self, progress=print) -> None:
        from pulse.sim import api as sim

        self.cluster = Cluster(self.root / "pg", free_port(), find_pg_bin())
        self.cluster.start()
        admin = psycopg2.connect(self.cluster.url())
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute("create database warehouse")
        admin.close()
        self.env = {
            **os.environ,
            "PULSE_HOME": str(self.root / "home"),
            "PULSE_WAREHOUSE_URL": self.cluster.url("warehouse"),
            "PULSE_SOURCE_URL_TEMPLATE": self.cluster.url("{country}"),
            "PULSE_SOURCES": ",".join(c.lower() for c in self.all_countries),
        }
        self.settings = config.Settings(
            home=self.root / "home",
            warehouse_url=self.env["PULSE_WAREHOUSE_URL"],
            source_url_template=self.env["PULSE_SOURCE_URL_TEMPLATE"],
            sources=[c.lower() for c in self.all_countries],
        )
        sim.setup_databases(self.settings)
        progress(f"backfilling {self.backfill:,} submissions …")
        sim.backfill(self.settings, self.backfill, countries=self.countries, seed=1)
        for cnt in MARKER_COUNTRIES:  # a few rows each, so one marker moves the mean
            sim.insert_rows(self.settings, cnt, 5, seed=2)
        self.sqlite = self.root / "home" / "pulse.db"
        logs = self.root / "home" / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        progress("pulse run: first build (seeds + every model) …")
        # PULSE_BENCH_RUN_ARGS: extra `pulse run` flags, to compare loop variants.
        extra = os.environ.get("PULSE_BENCH_RUN_ARGS", "").split()
        self._spawn(
            "pipeline", _pulse("run", "--no-jobs", "--sqlite", str(self.sqlite), *extra), logs
        )
        total = source_total(self.settings, self.all_countries)
        built = wait_for(lambda: self._served_count_sqlite() == total, 3600, interval=1.0)
        if built is None:
            raise RuntimeError(f"pulse run did not serve the backfill; see {logs}")
        port = free_port()
        self._spawn(
            "datasette", _pulse("serve", "--port", str(port), "--sqlite", str(self.sqlite)), logs
        )
        self.url = f"http://127.0.0.1:{port}"
        if wait_for(lambda: forage_json(self.url, "submissions")["count"] == total, 60) is None:
            raise RuntimeError(f"Datasette did not come up; see {logs}")

    def _spawn(self, name: str, argv: list[str], logs: Path) -> None:
        out = open(logs / f"{name}.log", "ab")
        self.processes[name] = subprocess.Popen(
            argv, env=self.env, stdout=out, stderr=subprocess.STDOUT
        )

    def _served_count_sqlite(self) -> int | None:
        from pulse.realtime.probe import served_count

        return served_count(self.sqlite)

    # -- markers -----------------------------------------------------------------------------
    def marker(self, rng: random.Random, high: bool, cnt: str) -> tuple[int, float]:
        """Commit one marker submission into `cnt`; returns (its expected row count, t_commit).

        DURECEC = (ST126 + 2) − ST125: 8 years (high) or 0 (low), so the country's
        `x` on /forage/early_education_and_belonging must move up or down; TMINS likewise
        2,960 or 100 minutes per week.
        """
        from pulse import codebook
        from pulse.sim import rows
        from pulse.sim.control import IdAllocator
        from pulse.sim.messiness import Messifier

        names = codebook.variables()
        row = rows.submission(cnt, rng, Messifier(0.0, rng))
        values = {
            "st125q01na": "1" if high else "6",
            "st126q01ta": "7" if high else "4",
            "st060q01na": "80" if high else "10",
            "st061q01na": "37" if high else "10",
            "st059q01ta": "NA",
            "st059q02ta": "NA",
            "st059q03ta": "NA",
            # the pool rows carry the OECD's official indices, which win over computed ones
            "durecec": "NA",
            "tmins": "NA",
            # a weight, so that the weighted country mean must move (a pool row without one
            # left the mean unchanged: a marker that never showed)
            "w_fstuwt": "100",
        }
        for name, value in values.items():
            row[names.index(name)] = value
        ids = IdAllocator(self.settings, rng)
        try:
            (row_id,) = ids.take(1)
        finally:
            ids.close()
        conn = psycopg2.connect(self.settings.source_url(cnt))
        try:
            with conn, conn.cursor() as cur:
                rows.copy_rows(cur, [(row_id, "\t".join(row))])
            committed = time.monotonic()
            self._markers += 1
            with conn.cursor() as cur:
                cur.execute("select count(*) from public.responses")
                expected = cur.fetchone()[0]
        finally:
            conn.close()
        return expected, committed

    def early(self, cnt: str) -> tuple[float, int] | None:
        body = forage_json(self.url, f"early_education_and_belonging?countries={cnt}")
        for item in body["datasets"]:
            if item["id"] == cnt:
                point = item["data"][0]
                return point["x"], point["submissions"]
        return None

    def attach(self, stream) -> None:
        """Count on `stream` (not yet started) for what has been committed: see committed_so_far."""
        self._stream = stream
        self._base = source_total(self.settings, self.all_countries)
        self._markers = 0

    def committed_so_far(self) -> int:
        """Rows committed in the application databases by now: the rows there when the
        stream was attached, plus the stream's own count of its commits, plus the markers.
        (Counting every database instead meant a scan of all full-width rows per marker, a
        load on the machine that grew with the run.) Without a stream: count them."""
        if self._stream is None:
            return source_total(self.settings, self.all_countries)
        return self._base + self._stream.stats()["rows_committed"] + self._markers

    def measure_marker(self, rng: random.Random, high: bool, timeout: float = 15.0) -> dict:
        """Commit a marker; seconds until Forage's count and the country's mean reflect it."""
        cnt = rng.choice(MARKER_COUNTRIES)
        before = self.early(cnt)
        if before is None:
            raise RuntimeError(f"{cnt} is not served yet")
        expected_n, committed = self.marker(rng, high, cnt)
        total = self.committed_so_far()
        count_s = mean_s = None
        while time.monotonic() - committed < timeout and (count_s is None or mean_s is None):
            now = time.monotonic() - committed
            if count_s is None and forage_json(self.url, "submissions")["count"] >= total:
                count_s = now
            if mean_s is None:
                seen = self.early(cnt)
                if seen and seen[1] == expected_n and (seen[0] > before[0]) == high:
                    mean_s = time.monotonic() - committed
            time.sleep(0.05)  # Forage polls once a second; 50 ms keeps the probe's load small
        both = None if count_s is None or mean_s is None else max(count_s, mean_s)
        return {"country": cnt, "count_s": count_s, "mean_s": mean_s, "seconds": both}

    # -- processes ---------------------------------------------------------------------------
    def rss_mb(self) -> dict[str, float]:
        """Resident memory per process (PostgreSQL: all its processes, minus shared memory)."""
        out = {}
        for name, proc in self.processes.items():
            try:
                out[name] = psutil.Process(proc.pid).memory_info().rss / 2**20
            except psutil.NoSuchProcess:
                out[name] = float("nan")
        out["bench+stream"] = psutil.Process().memory_info().rss / 2**20
        pg = self.cluster.pid() if self.cluster else None
        if pg:
            try:
                procs = [psutil.Process(pg), *psutil.Process(pg).children(recursive=True)]
                out["postgres_private"] = sum(_private_mb(p) for p in procs)
            except psutil.NoSuchProcess:
                pass
        return out

    def loop_ticks(self, since: float, until: float) -> list[dict]:
        """The loop's tick and dbt_tick events (JSON lines) between two time.time() stamps."""
        path = self.root / "home" / "logs" / "realtime.jsonl"
        ticks = []
        with open(path) as f:
            for line in f:
                event = json.loads(line)
                kind = event.get("event")
                if kind in ("tick", "dbt_tick") and since <= event["ts"] <= until:
                    ticks.append(event)
        return ticks

    def stop(self) -> None:
        for proc in reversed(list(self.processes.values())):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if self.cluster is not None:
            self.cluster.stop("fast")
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)


def _private_mb(proc: psutil.Process) -> float:
    """RSS without shared memory (shared buffers are counted once, elsewhere)."""
    info = proc.memory_full_info()
    return (info.rss - info.shared) / 2**20
