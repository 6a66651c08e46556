"""`dbt build` (every model and data test) and `dbt docs generate` succeed on the real rows,
and the marts agree with references computed outside them.

The weighted country means are checked against tests/fixtures/sample_means_fra_ita_mex.csv: weighted
means of the official values of the same students, computed with the R package Rrepest.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from pisa_pulse.loader.raw_fixture import REPO_ROOT, pool_rows
from tests.support.marts_world import MartsWorld

SAMPLE_MEANS = REPO_ROOT / "tests" / "fixtures" / "sample_means_fra_ita_mex.csv"
FORAGE_VIEWS = {
    "forage_submissions",
    "forage_submissions_over_time",
    "forage_learning_hours",
    "forage_escs",
    "forage_early_education_belonging",
}


@pytest.fixture(scope="module")
def built(pg_server, tmp_path_factory):
    world = MartsWorld.create(pg_server, tmp_path_factory.mktemp("marts_build"), "martsb")
    world.insert([dict(r, _id=i + 1) for i, r in enumerate(pool_rows())])
    world.execute(
        "insert into raw.loader_sources (cnt, status, rows_loaded, last_polled_at)"
        " values ('FRA', 'ok', 311, now() - interval '2 seconds'), ('ITA', 'ok', 593, now()),"
        " ('MEX', 'down', 365, now())"
    )
    world.build_result = world.dbt("build")  # type: ignore[attr-defined]
    world.docs_result = world.dbt("docs", "generate")  # type: ignore[attr-defined]
    return world


def test_dbt_build_runs_every_marts_test(built):
    out = built.build_result.stdout
    assert "ERROR=0" in out
    for name in ("unique_forage_escs_country", "unique_together_reconciliation"):
        assert name in out


def test_docs_describe_the_marts_and_the_exposure(built):
    manifest = json.loads((built.target / "manifest.json").read_text())
    catalog = json.loads((built.target / "catalog.json").read_text())
    marts = {
        n["name"]: n
        for n in manifest["nodes"].values()
        if n["resource_type"] == "model" and n["schema"] == "marts"
    }
    assert FORAGE_VIEWS <= set(marts)
    for name, node in marts.items():
        assert node["description"].strip(), name
        assert f"model.pisa_pulse.{name}" in catalog["nodes"], name
    exposure = manifest["exposures"]["exposure.pisa_pulse.forage_dashboard"]
    assert exposure["owner"]["name"].startswith("GEI")
    assert {d.rsplit(".", 1)[1] for d in exposure["depends_on"]["nodes"]} == FORAGE_VIEWS
    assert exposure["description"].count("/forage/") == 5
    # the exposure names exactly the charts the served meta (the catalog's owner) declares
    charts = {
        n["name"]: n["config"]["meta"]["served"]
        for n in manifest["nodes"].values()
        if "served" in n["tags"] and n["config"]["meta"]["served"].get("chart")
    }
    assert set(charts) == {d.rsplit(".", 1)[1] for d in exposure["depends_on"]["nodes"]}
    for name, meta in charts.items():
        assert f"`{meta['forage_path']}" in exposure["description"], name


def test_weighted_means_match_the_reference(built):
    profile = {r["country"]: r for r in built.query("select * from marts.country_profile")}
    with SAMPLE_MEANS.open() as fh:
        reference = list(csv.DictReader(fh))
    assert len(reference) >= 20
    for ref in reference:
        row = profile[ref["cnt"]]
        x = ref["index"].lower()
        assert row[f"{x}_n"] == int(ref["n_valid"]), (ref["cnt"], x)
        assert row[f"{x}_weighted"] is True
        assert abs(row[f"{x}_mean"] - float(ref["weighted_mean"])) <= 0.0005 + 1e-9, (
            ref["cnt"],
            x,
        )


def test_forage_views_serve_every_country(built):
    counts = {
        r["cnt"]: r["n"]
        for r in built.query("select cnt, count(*) as n from raw.responses group by cnt")
    }
    early = built.query("select * from marts.forage_early_education_belonging")
    assert {r["country"]: r["submissions"] for r in early} == counts
    assert built.query("select count from marts.forage_submissions")[0]["count"] == sum(
        counts.values()
    )
    hours = built.query("select * from marts.forage_learning_hours")
    assert all(20 <= r["hours"] <= 40 and r["weighted"] for r in hours)


def test_reconciliation_matches_a_direct_comparison(built):
    rows = built.query(
        "select * from marts.reconciliation where index_name in ('escs', 'homepos', 'tmins')"
    )
    assert {r["country"] for r in rows} == {"ALL", "FRA", "ITA", "MEX"}
    students = built.query(
        "select cnt, escs_computed, escs_official, homepos_computed, homepos_official,"
        " tmins_computed, tmins_official from intermediate.int_student_indices"
    )
    for r in rows:
        x = r["index_name"]
        pairs = [
            (float(s[f"{x}_computed"]), float(s[f"{x}_official"]))
            for s in students
            if (r["country"] in ("ALL", s["cnt"]))
            and s[f"{x}_computed"] is not None
            and s[f"{x}_official"] is not None
        ]
        assert r["n_compared"] == len(pairs) > 0
        diffs = [abs(c - o) for c, o in pairs]
        assert r["mean_abs_diff"] == pytest.approx(sum(diffs) / len(diffs), abs=1e-9)
        within = sum(d <= r["tolerance"] + 1e-9 for d in diffs) / len(diffs)
        assert r["share_within_tolerance"] == pytest.approx(within, abs=1e-9)
        assert r["n_disagree"] == sum(d > r["tolerance"] + 1e-9 for d in diffs)
        rule = "computed when valid" if x == "tmins" else "official when present"
        assert r["served_rule"] == rule


def test_freshness_reports_every_source_and_overall(built):
    rows = {r["source"]: r for r in built.query("select * from marts.freshness")}
    assert set(rows) == {"FRA", "ITA", "MEX", "overall"}
    # polled 2 s apart in one statement; the view reads both against the same now()
    assert rows["FRA"]["lag_ms"] - rows["ITA"]["lag_ms"] == 2000
    assert rows["overall"]["lag_ms"] == max(rows[c]["lag_ms"] for c in ("FRA", "ITA", "MEX"))
    assert rows["overall"]["status"] == "degraded"
    assert rows["overall"]["tail_rows"] == 0


def test_source_freshness_passes_with_the_indexed_query(built):
    # Passes (exit 0; WARN after a minute: the rows were loaded when the module started)
    result = built.dbt("source", "freshness")  # raises when dbt exits non-zero
    assert "ERROR STALE" not in result.stdout
    assert "freshness of pisa.responses" in result.stdout
    sources = json.loads((built.target / "sources.json").read_text())
    (checked,) = [r for r in sources["results"] if r["unique_id"].endswith("pisa.responses")]
    newest = built.query("select max(_loaded_at) as t from raw.responses")[0]["t"]
    assert checked["status"] in ("pass", "warn")
    assert dt.datetime.fromisoformat(checked["max_loaded_at"].replace("Z", "+00:00")) == newest
    plan = built.query(
        "explain select _loaded_at from raw.responses order by _load_seq desc limit 1"
    )
    assert "responses_load_seq_idx" in " ".join(r["QUERY PLAN"] for r in plan)


def test_pulse_status_shows_the_source_freshness_job(built, tmp_path):
    """`pulse status --json` reports the last run of the source_freshness job (its
    target/sources.json), here the run above copied to where the job writes it."""
    built.dbt("source", "freshness")
    target = tmp_path / "jobs" / "source_freshness" / "target"
    target.mkdir(parents=True)
    shutil.copy(built.target / "sources.json", target / "sources.json")
    env = {**os.environ, "PULSE_HOME": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-m", "pisa_pulse.cli", "status", "--json"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    shown = json.loads(out.stdout)["source_freshness"]
    responses = shown["sources"]["pisa.responses"]
    assert responses["status"] in ("pass", "warn") and responses["age_s"] >= 0
    assert shown["checked_at"]


def _listed(world, *selection: str) -> list[str]:
    out = world.dbt("ls", "--quiet", "--resource-type", "model", "--output", "name", *selection)
    out = out.stdout
    return sorted(line.strip() for line in out.splitlines() if line.strip())


def test_selectors_are_the_selections_the_python_ran(built):
    assert _listed(built, "--selector", "realtime") == _listed(
        built, "--select", "tag:realtime", "--exclude", "int_student_indices"
    )
    assert _listed(built, "--selector", "realtime_with_indices") == _listed(
        built, "--select", "tag:realtime"
    )
    assert _listed(built, "--selector", "slow") == _listed(
        built, "--select", "tag:slow", "int_data_quality__nulled_values"
    )
    assert _listed(built, "--selector", "learning") == _listed(built, "--select", "tag:learning")
    assert _listed(built, "--selector", "calibration") == ["int_homepos_params"]


def test_served_marts_carry_their_meta(built):
    manifest = json.loads((built.target / "manifest.json").read_text())
    served = {
        n["name"]: n["config"]["meta"]["served"]
        for n in manifest["nodes"].values()
        if n["resource_type"] == "model" and "served" in n["tags"]
    }
    assert set(served) == FORAGE_VIEWS | {
        "freshness",
        "reconciliation",
        "data_quality",
        "country_profile",
    }
    for name in FORAGE_VIEWS:
        node = manifest["nodes"][f"model.pisa_pulse.{name}"]
        assert node["config"]["contract"]["enforced"], name
        assert all(c["data_type"] for c in node["columns"].values()), name
        assert served[name]["forage_path"] == "/forage/" + served[name]["chart"]
    assert all(meta["label"] and meta["refresh"] for meta in served.values())


def test_a_realtime_tick_builds_by_its_selector(built):
    """What an engineer runs to reproduce one tick of the loop, with the state tables' tests."""
    result = built.dbt("build", "--selector", "realtime")
    assert "PASS=" in result.stdout and "ERROR=0" in result.stdout, result.stdout[-2000:]
    # the loop advances the indices itself: the tick's selection leaves the model out
    assert re.search(r"\.country_index_state\s", result.stdout)
    assert not re.search(r"\.int_student_indices\s", result.stdout)
