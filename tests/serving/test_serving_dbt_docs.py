"""`/dbt-docs/`: the docs job's target folder served by Datasette (no real `dbt docs generate`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pisa_pulse.cli.realtime import _jobs
from pisa_pulse.serving import dbt_docs
from pisa_pulse.serving.app import make_datasette
from tests.support.serving_marts import Client


def _client(tmp_path: Path, docs: Path) -> Client:
    return Client(make_datasette(tmp_path / "pulse.db", dbt_docs_dir=docs))


def test_before_the_first_docs_job_the_page_says_not_generated(tmp_path):
    client = _client(tmp_path, tmp_path / "jobs" / "docs" / "target")
    try:
        reply = client.request("/dbt-docs/")
        assert reply.status == 503
        assert reply.headers["content-type"].startswith("text/html")
        assert b"not generated yet" in reply.body
        assert client.request("/dbt-docs/manifest.json").status == 404
        redirect = client.request("/dbt-docs")
        assert redirect.status == 302 and redirect.headers["location"] == "/dbt-docs/"
    finally:
        client.close()


def test_serves_the_three_files_and_nothing_else(tmp_path):
    docs = tmp_path / "target"
    docs.mkdir()
    (docs / "index.html").write_text("<html><body>dbt docs of pisa_pulse</body></html>")
    manifest = {"nodes": {"model.pisa_pulse.forage_escs": {}}}
    (docs / "manifest.json").write_text(json.dumps(manifest))
    (docs / "catalog.json").write_text("{}")
    (docs / "run_results.json").write_text("{}")
    (tmp_path / "secret.txt").write_text("no")
    client = _client(tmp_path, docs)
    try:
        index = client.request("/dbt-docs/")
        assert index.status == 200 and b"dbt docs of pisa_pulse" in index.body
        assert index.headers["content-type"].startswith("text/html")
        assert client.request("/dbt-docs/index.html").body == index.body
        reply = client.request("/dbt-docs/manifest.json")
        assert reply.status == 200 and reply.json() == manifest
        assert reply.headers["content-type"].startswith("application/json")
        assert client.request("/dbt-docs/catalog.json").json() == {}
        for other in ("run_results.json", "..%2Fsecret.txt", "../secret.txt"):
            assert client.request(f"/dbt-docs/{other}").status == 404, other
        assert 'href="/dbt-docs/"' in client.request("/").body.decode()
        assert 'href="/dbt-docs/"' in client.request("/dashboard").body.decode()
    finally:
        client.close()


def test_the_docs_job_writes_where_datasette_reads(tmp_path, monkeypatch):
    monkeypatch.setenv("PULSE_HOME", str(tmp_path))
    args = argparse.Namespace(
        build_every=0, check_every=0, docs_every=1800, calibrate_every=0, source_freshness_every=0
    )
    (job,) = _jobs(args, tmp_path)
    assert job.name == "docs"
    argv = list(job.argv)
    target = Path(argv[argv.index("--target-path") + 1])
    assert target == dbt_docs.target_dir(tmp_path)
    # pulse serve with no option serves $PULSE_HOME's docs folder.
    ds = make_datasette(tmp_path / "pulse.db")
    assert ds._pulse_dbt_docs == target
