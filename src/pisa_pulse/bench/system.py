"""The system as `make run` starts it, driven from outside, for the real-time benchmarks.

`pulse up` runs as a subprocess in a data folder of its own (its own durable PostgreSQL,
the 82 demo sources, the pipeline with its slow jobs on, Datasette), with `--rate 0` so
that no simulator writes: the benchmark is the only writer. `LoadWriter` streams rows into
the sources at a given rate and logs every commit (time, country, the country's row count
after it); `Poller` reads Forage's bubble chart, which carries every country's submission
count, as fast as it answers. A commit is reflected at the first poll whose count for its
country reaches the commit's count (commits of a country are serial: one writer owns it),
so every commit's lag is known, not sampled.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import psutil

from pisa_pulse.bench.common import percentile

BUBBLES = "/forage/early_education_and_belonging"
TIMEOUT_S = 15.0  # a commit not reflected this long after it is lost: infinite lag
WINDOW_S = 10.0
INF = float("inf")


class System:
    """`pulse up` (by default `--rate 0`) in a tmp data folder; stopped (and removed) on exit."""

    def __init__(self, keep: bool = False, rate: float = 0, extra_args: tuple[str, ...] = ()):
        self.keep = keep
        self.rate = rate  # the simulator's rate: 0, none (the benchmark writes the load)
        self.home = Path(tempfile.mkdtemp(prefix="pulse-bench-"))
        self.extra_args = extra_args
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self.settings = None
        self._out = None

    def __enter__(self) -> System:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PULSE_")}
        return {**env, "PULSE_HOME": str(self.home)}

    def start(self, timeout: float = 900, progress=print) -> None:
        from pisa_pulse.core.cluster import free_port

        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self._out = open(self.home / "up.out", "wb")
        argv = [
            sys.executable,
            "-m",
            "pisa_pulse.cli",
            "up",
            "--rate",
            str(self.rate),
            "--port",
            str(port),
        ]
        self.proc = subprocess.Popen(
            [*argv, *self.extra_args], env=self.env, stdout=self._out, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while b"PISA Pulse is running" not in (self.home / "up.out").read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"pulse up did not start:\n{self.output()[-3000:]}")
            time.sleep(0.2)
        self.settings = self._settings()
        progress(f"pulse up is running ({self.home}); waiting for the first full publication")
        total = self.source_total()
        wait_until(
            lambda: (self.served_total() or -1) >= total, timeout, "the backfill to be served"
        )

    def _settings(self):
        from pisa_pulse.core import config

        saved = os.environ.get("PULSE_HOME")
        os.environ["PULSE_HOME"] = str(self.home)
        try:
            return config.load()
        finally:
            if saved is None:
                os.environ.pop("PULSE_HOME", None)
            else:
                os.environ["PULSE_HOME"] = saved

    def output(self) -> str:
        return (self.home / "up.out").read_text(errors="replace")

    def countries(self) -> list[str]:
        from pisa_pulse.loader.discovery import discover

        return sorted(c.upper() for c in discover(self.settings))

    def source_counts(self) -> dict[str, int]:
        import psycopg2

        counts = {}
        for country in self.countries():
            with psycopg2.connect(self.settings.source_url(country)) as conn:
                with conn.cursor() as cur:
                    cur.execute("select count(*) from public.responses")
                    counts[country] = cur.fetchone()[0]
            conn.close()
        return counts

    def source_total(self) -> int:
        return sum(self.source_counts().values())

    def served_total(self) -> int | None:
        try:
            return get_json(self.url, "/forage/submissions")["count"]
        except (OSError, ValueError, KeyError, http.client.HTTPException):
            return None

    def events(self, since: float = 0.0) -> list[dict]:
        """The pipeline's JSON-lines log (job starts and ends, ticks) since a wall time."""
        path = self.home / "logs" / "realtime.jsonl"
        out = []
        if path.exists():
            for line in path.read_text().splitlines():
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if record.get("ts", 0) >= since:
                    out.append(record)
        return out

    def job_intervals(self, since: float = 0.0) -> list[tuple[str, float, float]]:
        """(job, start, end) wall times of the slow jobs; a running one ends now."""
        open_jobs: dict[str, float] = {}
        out = []
        for e in self.events():
            if e.get("event") == "job_start":
                open_jobs[e["job"]] = e["ts"]
            elif e.get("event") == "job_end" and e.get("job") in open_jobs:
                out.append((e["job"], open_jobs.pop(e["job"]), e["ts"]))
        out += [(job, start, time.time()) for job, start in open_jobs.items()]
        return [j for j in out if j[2] >= since]

    def processes(self) -> dict[str, psutil.Process]:
        """`pulse up` and each of its children (the supervisor's report names them)."""
        procs = {"up": psutil.Process(self.proc.pid)}
        report = self.home / "supervisor.json"
        if report.exists():
            for name, child in json.loads(report.read_text()).get("services", {}).items():
                if child.get("pid"):
                    try:
                        procs[name] = psutil.Process(child["pid"])
                    except psutil.NoSuchProcess:
                        pass
        return procs

    def rss_mb(self) -> dict[str, float]:
        """Resident memory of each service with its descendants (not PostgreSQL)."""
        out = {}
        for name, proc in self.processes().items():
            if name == "up":
                continue
            try:
                tree = [proc, *proc.children(recursive=True)]
                out[name] = round(sum(p.memory_info().rss for p in tree) / 2**20, 1)
            except psutil.NoSuchProcess:
                pass
        return out

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(90)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._out is not None:
            self._out.close()
        if not self.keep:
            shutil.rmtree(self.home, ignore_errors=True)


def get_json(base_url: str, path: str, timeout: float = 5.0) -> dict:
    u = urlparse(base_url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise ValueError(f"HTTP {resp.status}")
        return json.loads(body)
    finally:
        conn.close()


def wait_until(predicate, timeout: float, what: str, interval: float = 0.25) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


# -- the load and its commits ----------------------------------------------------------------


def load_writer(settings, rate: float, base: dict[str, int], seed: int = 1):
    """A simulator Stream over every source that logs each commit: (wall time, country,
    the country's row count after it). `base` is each country's count before it starts."""
    from pisa_pulse.sim.stream import Stream

    class LoadWriter(Stream):
        def __init__(self):
            super().__init__(settings, rate, countries=sorted(base), seed=seed)
            self.commits: list[tuple[float, str, int]] = []

        def _record_commit(self, country: str, n: int) -> None:
            now = time.time()
            super()._record_commit(country, n)
            # one writer thread owns each country, so its count is not raced here
            self.commits.append((now, country, base[country] + self._committed[country]))

    return LoadWriter()


class Poller:
    """Polls the bubble chart back to back on one keep-alive connection, in a thread."""

    def __init__(self, base_url: str, interval: float = 0.02):
        self.base_url = base_url
        self.interval = interval
        self.polls: list[tuple[float, dict[str, int]]] = []  # (wall time answered, counts)
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-poller", daemon=True)

    def start(self) -> Poller:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        u = urlparse(self.base_url)
        conn = None
        while not self._stop.is_set():
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=5)
                conn.request("GET", BUBBLES)
                resp = conn.getresponse()
                body = resp.read()
                now = time.time()
                if resp.status == 200:
                    data = json.loads(body)["datasets"]
                    self.polls.append((now, {d["id"]: d["data"][0]["submissions"] for d in data}))
                else:
                    self.errors += 1
            except (OSError, ValueError, KeyError, http.client.HTTPException):
                self.errors += 1
                if conn is not None:
                    conn.close()
                conn = None
            self._stop.wait(self.interval)


def lags(
    commits: list[tuple[float, str, int]], polls: list[tuple[float, dict]], timeout=TIMEOUT_S
) -> list[dict]:
    """Each commit's lag: seconds from its commit to the first poll that shows it; infinite
    (lost) when no poll shows it or only after `timeout`."""
    pending: dict[str, deque] = defaultdict(deque)
    for t, country, count in sorted(commits):
        pending[country].append((t, count))
    out = []
    for t_poll, counts in polls:
        for country, served in counts.items():
            queue = pending.get(country)
            while queue and queue[0][1] <= served:
                t, count = queue.popleft()
                lag = max(0.0, t_poll - t)
                out.append({"t": t, "country": country, "lag": lag if lag <= timeout else INF})
    for country, queue in pending.items():
        out += [{"t": t, "country": country, "lag": INF} for t, _ in queue]
    return sorted(out, key=lambda s: s["t"])


@dataclass
class Windows:
    """Lag percentiles in consecutive windows of commit time, each marked with the jobs
    that ran during it."""

    seconds: float = WINDOW_S
    rows: list[dict] = field(default_factory=list)

    @classmethod
    def of(cls, samples: list[dict], jobs: list[tuple[str, float, float]], seconds=WINDOW_S):
        w = cls(seconds)
        if not samples:
            return w
        t0 = samples[0]["t"]
        buckets: dict[int, list[float]] = defaultdict(list)
        for s in samples:
            buckets[int((s["t"] - t0) // seconds)].append(s["lag"])
        for k in sorted(buckets):
            start, end = t0 + k * seconds, t0 + (k + 1) * seconds
            running = sorted({j for j, a, b in jobs if a < end and b > start})
            w.rows.append(
                {
                    "start": round(start, 3),
                    "n": len(buckets[k]),
                    "p95": percentile(buckets[k], 95),
                    "jobs": running,
                }
            )
        return w

    def worst(self, with_jobs: bool | None = None) -> dict | None:
        rows = [r for r in self.rows if with_jobs is None or bool(r["jobs"]) == with_jobs]
        return max(rows, key=lambda r: r["p95"]) if rows else None


def lag_summary(samples: list[dict]) -> dict:
    values = [s["lag"] for s in samples]
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "max": max(values),
        "lost": sum(1 for v in values if v == INF),
    }


def measure(system: System, rate: float, seconds: float, seed: int = 1, progress=print) -> dict:
    """Write at `rate` for `seconds`, then wait for every commit (or its timeout)."""
    base = system.source_counts()
    writer = load_writer(system.settings, rate, base, seed)
    poller = Poller(system.url).start()
    since = time.time()
    writer.start()
    try:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            time.sleep(min(10.0, max(0.0, end - time.monotonic())))
            progress(
                f"  {rate:g}/s: {len(writer.commits):,} commits, "
                f"{len(poller.polls):,} polls, {end - time.monotonic():.0f} s to go"
            )
    finally:
        writer.stop()
    until = time.time()
    final = base.copy()
    for _, country, count in writer.commits:
        final[country] = max(final[country], count)

    def caught_up() -> bool:
        latest = poller.polls[-1][1] if poller.polls else {}
        return all(latest.get(c, 0) >= n for c, n in final.items() if n > base[c])

    try:
        wait_until(caught_up, TIMEOUT_S, "the last commits", interval=0.1)
    except TimeoutError:
        pass  # the stragglers count as lost (infinite)
    poller.stop()
    samples = lags(writer.commits, poller.polls)
    jobs = system.job_intervals(since)
    stats = writer.stats()
    rows = sum(final.values()) - sum(base.values())
    return {
        "rate": rate,
        "seconds": round(until - since, 1),
        "rows": rows,
        "achieved_rate": round(rows / (until - since), 1),
        "commits": len(writer.commits),
        "write_errors": stats.get("errors", 0),
        "polls": len(poller.polls),
        "poll_errors": poller.errors,
        "lag_s": lag_summary(samples),
        "windows": Windows.of(samples, jobs).rows,
        "jobs": [{"job": j, "start": a, "end": b} for j, a, b in jobs],
        "samples": samples,
    }
