"""The supervisor of `pulse up` heals, gives up, stops cleanly; production mode writes nothing.

Real processes throughout: the supervisor runs in its own Python process with cheap stand-in
children (`python -c 'import time; time.sleep(60)'`), is signalled for real, and reports
through the same file `pulse status` reads. The production-mode test runs the real
`pulse up` code path (the real `services()` list is recorded, stand-ins run in its place)
against source databases on the session's PostgreSQL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg2
import pytest

from pisa_pulse.core import config
from pisa_pulse.ops.supervisor import RestartPolicy, Service, Supervisor, read_report

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]
CRASHER = [sys.executable, "-c", "import sys; sys.exit(3)"]
FAST = {"initial": 0.1, "maximum": 0.4, "stable_after": 30, "max_crashes": 4, "window": 30}

SUPERVISE = r"""
import json, sys
from pathlib import Path
from pisa_pulse.ops.supervisor import RestartPolicy, Service, supervise
spec = json.loads(sys.argv[1])
children = [Service(name, argv) for name, argv in spec["children"]]
sys.exit(supervise(children, Path(spec["log_dir"]), RestartPolicy(**spec["policy"])))
"""


class Proc:
    """A child process whose stdout is collected by a thread (so reads never block)."""

    def __init__(self, argv: list[str], env: dict[str, str]):
        self.proc = subprocess.Popen(
            argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_output(self, text: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                time.sleep(0.2)  # let the reader catch up before failing
                assert text in self.output, self.output
            time.sleep(0.05)

    def finish(self, timeout: float = 20) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (not yet reaped by its parent) is dead too
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _wait(predicate, timeout: float = 15, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "pulse_home"
    monkeypatch.setenv("PULSE_HOME", str(path))
    return path


def _supervisor(home: Path, children: dict[str, list[str]], policy: dict) -> Proc:
    spec = {"children": list(children.items()), "log_dir": str(home / "logs"), "policy": policy}
    return Proc([sys.executable, "-c", SUPERVISE, json.dumps(spec)], dict(os.environ))


def _running(names) -> dict | None:
    report = read_report()
    services = report.get("services") or {}
    if all(services.get(n, {}).get("state") == "running" for n in names):
        return report
    return None


def test_restart_policy_backoff():
    policy = RestartPolicy()
    assert [policy.delay(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


def test_backoff_doubles_and_resets_after_a_stable_run(home):
    """In-process, with a controlled clock: the delays between restarts of a crashing child."""
    policy = RestartPolicy(initial=1, maximum=4, stable_after=10, max_crashes=99, window=1)
    child = Service("c", CRASHER)
    sup = Supervisor([child], home / "logs", policy, echo=lambda line: None)
    try:
        sup.start()
        delays, now = [], 0.0
        for _ in range(4):
            child.process.wait()
            child.started_at = now  # crashed at once
            sup.step(now)
            delays.append(child.restart_at - now)
            now = child.restart_at
            sup.step(now)  # restarts it
        child.process.wait()
        child.started_at = now - 10  # this run stayed up for 10 s: starts over
        sup.step(now)
        delays.append(child.restart_at - now)
        assert delays == [1, 2, 4, 4, 1]
        assert child.restarts == 4
        assert read_report()["services"]["c"]["restarts"] == 4
    finally:
        sup.stop()


def test_killed_child_is_restarted_others_untouched_sigterm_stops_all(home):
    sup = _supervisor(home, {"web": SLEEPER, "pipeline": SLEEPER, "sim": SLEEPER}, FAST)
    try:
        before = _wait(lambda: _running(["web", "pipeline", "sim"]), what="three children")
        pids = {n: s["pid"] for n, s in before["services"].items()}
        assert before["supervisor_pid"] == sup.proc.pid

        os.kill(pids["pipeline"], signal.SIGKILL)

        def restarted():
            report = read_report()
            child = report["services"]["pipeline"]
            return report if child["state"] == "running" and child["restarts"] == 1 else None

        after = _wait(restarted, what="the pipeline restarted")
        new = {n: s["pid"] for n, s in after["services"].items()}
        assert new["pipeline"] != pids["pipeline"] and _alive(new["pipeline"])
        assert new["web"] == pids["web"] and new["sim"] == pids["sim"]
        assert all(_alive(p) for p in new.values())
        assert after["services"]["pipeline"]["last_exit"] == -signal.SIGKILL
        assert after["services"]["web"]["restarts"] == 0
        assert after["restarts_total"] == 1

        # what `pulse status --json` shows (the real command, in its own process)
        out = subprocess.run(
            [sys.executable, "-m", "pisa_pulse.cli", "status", "--json"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        status = json.loads(out.stdout)
        assert status["restarts"] == {"web": 0, "pipeline": 1, "sim": 0}
        assert status["supervisor"]["state"] == "running"
        assert status["pids"]["pipeline"] == new["pipeline"]
        assert status["pids"]["supervisor"] == sup.proc.pid

        # logged on the terminal, in the supervisor's log and in the child's own log
        assert "pipeline exited (killed by SIGKILL)" in sup.output
        assert "pipeline restarted" in sup.output
        assert "pipeline restarted" in (home / "logs" / "supervisor.log").read_text()
        assert "pipeline exited" in (home / "logs" / "pipeline.log").read_text()

        sup.proc.send_signal(signal.SIGTERM)
        assert sup.finish() == 0, sup.output
        assert not any(_alive(p) for p in new.values())
        assert read_report()["state"] == "stopped"
    finally:
        sup.kill()


def test_always_crashing_child_makes_it_give_up(home):
    sup = _supervisor(home, {"steady": SLEEPER, "broken": CRASHER}, FAST)
    try:
        steady_pid = _wait(
            lambda: (read_report().get("services") or {}).get("steady", {}).get("pid"),
            what="the steady child",
        )
        code = sup.finish(timeout=30)
        assert code == 1, sup.output
        assert "broken crashed 4 times within 30 s" in sup.output
        assert "giving up" in sup.output
        report = read_report()
        assert report["state"] == "gave up"
        assert report["services"]["broken"]["restarts"] == 3
        steady = report["services"]["steady"]
        assert steady["restarts"] == 0 and steady["state"] == "stopped"
        lines = (home / "logs" / "supervisor.log").read_text()
        assert "giving up" in lines
    finally:
        sup.kill()
    assert not _alive(steady_pid)  # the healthy child was stopped too


# --- production mode ---------------------------------------------------------------------------

UP = r"""
import argparse, json, sys
from pisa_pulse.cli import up
from pisa_pulse.ops.supervisor import Service, services
SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]

def stand_ins(args, port, production):
    real = services(args, port, production)
    print("services: " + json.dumps([s.name for s in real]), flush=True)
    return [Service(s.name, SLEEPER) for s in real]

args = argparse.Namespace(rate=20.0, port=int(sys.argv[1]), embedded=False)
sys.exit(up.cmd_up(args, make_services=stand_ins))
"""


def _databases(server: str, prefix: str) -> set[str]:
    conn = psycopg2.connect(f"{server}/postgres")
    try:
        with conn.cursor() as cur:
            cur.execute("select datname from pg_database where datname like %s", (prefix + "%",))
            return {name for (name,) in cur.fetchall()}
    finally:
        conn.close()


def _snapshot(settings, prefix: str, server: str) -> dict:
    """Every table's row count in every database of this test's prefix."""
    out = {}
    for name in sorted(_databases(server, prefix)):
        conn = psycopg2.connect(f"{server}/{name}")
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "select schemaname, relname, n_live_tup from pg_stat_user_tables "
                    "where schemaname not in ('raw', 'staging', 'marts', 'intermediate')"
                )
                tables = [(s, t) for s, t, _ in cur.fetchall()]
                for schema, table in tables:
                    cur.execute(f'select count(*) from "{schema}"."{table}"')
                    out[(name, schema, table)] = cur.fetchone()[0]
                cur.execute("select schemaname, sequencename, last_value from pg_sequences")
                for schema, seq, last in cur.fetchall():
                    out[(name, schema, seq)] = last
        finally:
            conn.close()
    return out


@pytest.fixture
def external_sources(pulse_env, pg_server, monkeypatch):
    """Two 'production' source databases with rows, then the settings that mark them external."""
    from pisa_pulse.sim import api

    monkeypatch.setenv("PULSE_SOURCES", "fra,ita")
    settings = config.load()
    api.setup_databases(settings)
    api.insert_rows(settings, "FRA", 3, seed=1)
    api.insert_rows(settings, "ITA", 2, seed=2)
    monkeypatch.setenv("PULSE_SOURCES_EXTERNAL", "1")
    prefix = pulse_env.test_prefix
    before = (_databases(pg_server, prefix), _snapshot(settings, prefix, pg_server))
    assert before[1][(f"{prefix}_fra", "public", "responses")] == 3
    yield prefix, before
    monkeypatch.setenv("PULSE_SOURCES_EXTERNAL", "0")
    api.drop_databases(config.load())


def test_production_up_creates_and_writes_nothing(external_sources, pg_server):
    from pisa_pulse.core.cluster import free_port

    prefix, (dbs_before, rows_before) = external_sources
    settings = config.load()
    assert settings.sources_external
    up = Proc([sys.executable, "-c", UP, str(free_port())], dict(os.environ))
    try:
        up.wait_output("PISA Pulse is running")
        assert "production mode: reading 2 external sources read-only; simulator off" in up.output
        assert 'services: ["datasette", "pipeline"]' in up.output  # the real list: no simulator
        assert "(external, read-only)" in up.output
        report = _wait(lambda: _running(["datasette", "pipeline"]), what="the stand-ins")
        assert set(report["services"]) == {"datasette", "pipeline"}
        up.proc.send_signal(signal.SIGTERM)
        assert up.finish() == 0, up.output
    finally:
        up.kill()
    assert _databases(pg_server, prefix) == dbs_before  # no database created (or dropped)
    assert _snapshot(settings, prefix, pg_server) == rows_before  # no row written


def _reader_role(server: str, databases: list[str]) -> str:
    """A login role that may only SELECT the sources' responses table."""
    conn = psycopg2.connect(f"{server}/postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("drop role if exists pulse_reader")
        cur.execute("create role pulse_reader login nocreatedb nocreaterole")
    conn.close()
    for db in databases:
        conn = psycopg2.connect(f"{server}/{db}")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("revoke create on schema public from public")
            cur.execute("grant usage on schema public to pulse_reader")
            cur.execute("grant select on public.responses to pulse_reader")
        conn.close()
    return "pulse_reader"


def test_production_up_reads_with_a_select_only_role(external_sources, pg_server):
    """The real `pulse up` (real pipeline and Datasette) serves external sources it may only
    SELECT from, and leaves them as they were."""
    import httpx

    from pisa_pulse.core.cluster import free_port

    prefix, (dbs_before, rows_before) = external_sources
    role = _reader_role(pg_server, [f"{prefix}_fra", f"{prefix}_ita"])
    host = pg_server.split("@", 1)[1]
    template = f"postgresql://{role}@{host}/{prefix}_{{country}}"
    env = {**os.environ, "PULSE_SOURCE_URL_TEMPLATE": template}
    port = free_port()
    up = Proc([sys.executable, "-m", "pisa_pulse.cli", "up", "--port", str(port)], env)
    try:
        up.wait_output("PISA Pulse is running", timeout=120)
        assert "production mode: reading 2 external sources read-only; simulator off" in up.output

        def served():
            try:
                return httpx.get(f"http://127.0.0.1:{port}/forage/submissions").json()["count"]
            except (httpx.HTTPError, ValueError, KeyError):
                return None

        _wait(lambda: served() == 5, timeout=240, what="the 5 source rows served")
        up.proc.send_signal(signal.SIGTERM)
        assert up.finish(60) == 0, up.output
    finally:
        up.kill()
    pipeline_log = (config.home() / "logs" / "pipeline.log").read_text()
    assert "permission denied" not in pipeline_log.lower(), pipeline_log[-2000:]
    assert _databases(pg_server, prefix) == dbs_before

    def sources(snapshot):  # the warehouse is ours to write
        return {k: v for k, v in snapshot.items() if k[0] != f"{prefix}_warehouse"}

    assert sources(_snapshot(config.load(), prefix, pg_server)) == sources(rows_before)


def test_production_sim_commands_refuse(external_sources, pg_server, capsys):
    from pisa_pulse.cli.main import main

    prefix, (dbs_before, rows_before) = external_sources
    for argv in (
        ["sim", "setup"],
        ["sim", "setup", "--countries", "DEU"],
        ["sim", "backfill", "10"],
        ["sim", "stream", "--rate", "5"],
        ["sim", "empty"],
        ["sim", "drop"],
        ["sim", "status"],
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "refused" in err and "external" in err, err
    assert _databases(pg_server, prefix) == dbs_before
    settings = config.load()
    assert _snapshot(settings, prefix, pg_server) == rows_before


def test_demo_mode_still_creates_its_databases(pulse_env, pg_server, monkeypatch):
    """The contrast: the demo's own (loopback) sources are set up by `pulse up`'s first step."""
    from pisa_pulse.ops.supervisor import prepare_sources
    from pisa_pulse.sim import api

    monkeypatch.setenv("PULSE_SOURCES", "mex")
    settings = config.load()
    assert not settings.sources_external  # 127.0.0.1, no PULSE_SOURCES_EXTERNAL
    try:
        assert prepare_sources(settings).startswith("1 application databases ready")
        assert f"{pulse_env.test_prefix}_mex" in _databases(pg_server, pulse_env.test_prefix)
    finally:
        api.drop_databases(settings)


@pytest.mark.parametrize(
    ("template", "flag", "external"),
    [
        ("postgresql://postgres@127.0.0.1:5432/{country}", None, False),
        ("postgresql://postgres@localhost/{country}", None, False),
        ("postgresql://postgres@[::1]:5432/{country}", None, False),
        ("postgresql://reader@gei-db.example.org/{country}", None, True),
        ("postgresql://reader@10.1.2.3/{country}", None, True),
        ("postgresql:///{country}?host=/var/run/postgresql", None, True),  # Unix socket
        ("postgresql://reader@gei-db.example.org/{country}", "0", False),
        ("postgresql://postgres@127.0.0.1:5432/{country}", "1", True),
        ("postgresql://postgres@127.0.0.1:5432/{country}", "yes", True),
    ],
)
def test_sources_external_setting(monkeypatch, template, flag, external):
    monkeypatch.setenv("PULSE_WAREHOUSE_URL", "postgresql://postgres@127.0.0.1/warehouse")
    monkeypatch.setenv("PULSE_SOURCE_URL_TEMPLATE", template)
    if flag is None:
        monkeypatch.delenv("PULSE_SOURCES_EXTERNAL", raising=False)
    else:
        monkeypatch.setenv("PULSE_SOURCES_EXTERNAL", flag)
    assert config.load().sources_external is external


def test_sources_external_bad_value(monkeypatch):
    monkeypatch.setenv("PULSE_WAREHOUSE_URL", "postgresql://postgres@127.0.0.1/warehouse")
    monkeypatch.setenv("PULSE_SOURCE_URL_TEMPLATE", "postgresql://postgres@127.0.0.1/{country}")
    monkeypatch.setenv("PULSE_SOURCES_EXTERNAL", "maybe")
    with pytest.raises(config.NotConfigured, match="PULSE_SOURCES_EXTERNAL"):
        config.load()


UP_CRASHING = r"""
import argparse, sys
from pisa_pulse.cli import up
from pisa_pulse.ops.supervisor import RestartPolicy, Service
SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]
CRASHER = [sys.executable, "-c", "import sys; sys.exit(3)"]

def stand_ins(args, port, production):
    return [Service("datasette", SLEEPER), Service("pipeline", CRASHER)]

policy = RestartPolicy(initial=0.05, maximum=0.1, stable_after=30, max_crashes=3, window=30)
args = argparse.Namespace(rate=20.0, port=1, embedded=False)
sys.exit(up.cmd_up(args, make_services=stand_ins, policy=policy))
"""


def test_up_gives_up_with_a_clear_message(home, monkeypatch):
    """`pulse up` itself: a service that keeps crashing ends it with exit 1 and the reason."""
    # external sources that are never contacted (PULSE_SOURCES given): no database needed
    monkeypatch.setenv("PULSE_WAREHOUSE_URL", "postgresql://pulse@127.0.0.1:9/warehouse")
    monkeypatch.setenv(
        "PULSE_SOURCE_URL_TEMPLATE", "postgresql://r:secret@gei-db.invalid/{country}"
    )
    monkeypatch.setenv("PULSE_SOURCES", "fra,ita,mex")
    monkeypatch.delenv("PULSE_SOURCES_EXTERNAL", raising=False)
    up = Proc([sys.executable, "-c", UP_CRASHING], dict(os.environ))
    try:
        assert up.finish(timeout=30) == 1, up.output
    finally:
        up.kill()
    assert "production mode: reading 3 external sources read-only; simulator off" in up.output
    assert "secret" not in up.output  # passwords are not printed
    assert "pulse: gave up: pipeline crashed 3 times within 30 s (last: exit code 3)" in up.output
    assert "everything is stopped; exit 1" in up.output
    report = read_report()
    assert report["state"] == "gave up"
    assert report["services"]["datasette"]["state"] == "stopped"
