"""The served marts come from dbt's manifest (serving/catalog.py): the publisher's tables, the
Forage charts and Datasette's metadata (titles, descriptions, columns, facets, sort) alike.

A real `dbt parse` of a temporary copy of the project (no warehouse needed), so a change to a
mart's yml is seen the way the pipeline sees it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from pisa_pulse.core import config
from pisa_pulse.core.dbt import run_dbt
from pisa_pulse.serving import catalog
from pisa_pulse.serving.app import METADATA, load_metadata
from pisa_pulse.serving.forage_plugin import CHARTS
from pisa_pulse.serving.publisher import Publisher

PROJECT = ("dbt_project.yml", "selectors.yml", "profiles.yml", "packages.yml")
PROJECT_DIRS = ("models", "macros", "seeds", "snapshots", "tests", "analyses")
FORAGE = {
    "submissions": "forage_submissions",
    "submissions_over_time": "forage_submissions_over_time",
    "learning_hours_per_week": "forage_learning_hours",
    "escs": "forage_escs",
    "early_education_and_belonging": "forage_early_education_belonging",
}


def _copy_project(dest: Path) -> Path:
    root = config.REPO_ROOT
    for name in PROJECT:
        if (root / name).exists():
            shutil.copy2(root / name, dest / name)
    for d in PROJECT_DIRS:
        if (root / d).exists():
            shutil.copytree(root / d, dest / d, ignore=shutil.ignore_patterns("__pycache__"))
    if (root / "dbt_packages").exists():
        shutil.copytree(root / "dbt_packages", dest / "dbt_packages")
    if (root / "data").exists():  # some yml may read files of data/ at parse time
        (dest / "data").symlink_to(root / "data")
    return dest


def _parse(project: Path, target: Path) -> Path:
    run_dbt(
        ["parse", "--quiet", "--project-dir", str(project)],
        "postgresql://127.0.0.1:5432/warehouse",
        target_path=target,
        log_path=target / "logs",
    )
    return target / "manifest.json"


@pytest.fixture(scope="module")
def manifests(tmp_path_factory):
    """The project's manifest, and one of a copy whose forage_escs and snapshot yml changed."""
    tmp = tmp_path_factory.mktemp("catalog")
    original = _parse(config.REPO_ROOT, tmp / "original")
    (tmp / "copy").mkdir()
    copy = _copy_project(tmp / "copy")
    forage_yml = copy / "models" / "marts" / "forage" / "_forage__models.yml"
    doc = yaml.safe_load(forage_yml.read_text())
    escs = next(m for m in doc["models"] if m["name"] == "forage_escs")
    escs["description"] = "Changed in the copy: the ESCS chart."
    escs["config"]["meta"]["served"]["label"] = "ESCS (copy)"
    escs["config"]["meta"]["served"]["facets"] = ["weighted"]
    next(c for c in escs["columns"] if c["name"] == "value")["description"] = "Copy's value."
    forage_yml.write_text(yaml.safe_dump(doc, sort_keys=False))
    snap_yml = copy / "snapshots" / "country_profile_history.yml"
    doc = yaml.safe_load(snap_yml.read_text())
    doc["snapshots"][0]["config"]["tags"] = ["slow"]  # no longer served
    snap_yml.write_text(yaml.safe_dump(doc, sort_keys=False))
    changed = _parse(copy, tmp / "changed")
    return original, changed


def _served_nodes(manifest: Path) -> dict[str, dict]:
    import json

    nodes = json.loads(manifest.read_text())["nodes"].values()
    return {n["name"]: n for n in nodes if "served" in n["tags"]}


def test_the_catalog_is_every_served_node_with_its_meta(manifests):
    original, _ = manifests
    served = catalog.read(original)
    nodes = _served_nodes(original)
    assert set(served.names()) == set(nodes)
    assert {"country_profile", "freshness", "country_profile_history", *FORAGE.values()} <= set(
        served.names()
    )
    assert served.charts() == FORAGE
    assert served["country_profile_history"].schema == "snapshots"
    assert served["forage_escs"].schema == "marts"
    assert set(served.every_publication()) == {*FORAGE.values(), "freshness"}
    assert {"reconciliation", "data_quality", "country_profile", "country_profile_history"} == set(
        served.analyst_interval()
    )


def test_datasette_metadata_is_generated_from_the_manifest(manifests):
    original, _ = manifests
    served = catalog.read(original)
    tables = load_metadata(served)["databases"]["pulse"]["tables"]
    for name, node in _served_nodes(original).items():
        meta = tables[name]
        assert meta["title"] == node["config"]["meta"]["served"]["label"], name
        assert meta["description"] == " ".join(node["description"].split()), name
        for column, c in node["columns"].items():
            assert meta["columns"][column] == " ".join(c["description"].split()), (name, column)
        for key in ("facets", "sort", "sort_desc"):
            assert meta.get(key) == node["config"]["meta"]["served"].get(key), (name, key)
    # The snapshot's undocumented columns carry country_profile's descriptions.
    history = tables["country_profile_history"]["columns"]
    assert history["escs_mean"] == tables["country_profile"]["columns"]["escs_mean"]
    assert history["dbt_valid_from"]
    # What dbt does not know stays hand-written.
    assert tables["publication"]["title"]
    assert load_metadata(served)["license"]


def test_a_change_to_a_marts_yml_reaches_datasette_and_the_publisher(manifests, tmp_path):
    original, changed = manifests
    served = catalog.read(changed)
    meta = load_metadata(served)["databases"]["pulse"]["tables"]["forage_escs"]
    assert meta["title"] == "ESCS (copy)"
    assert meta["description"] == "Changed in the copy: the ESCS chart."
    assert meta["columns"]["value"] == "Copy's value."
    assert meta["facets"] == ["weighted"]
    assert "country_profile_history" not in served.names()
    assert "country_profile_history" in catalog.read(original).names()
    pub = Publisher("postgresql://unused/", tmp_path / "pulse.db", served=served)
    try:
        assert "country_profile_history" not in pub.tables
        assert set(pub.tables) == set(served.names())
    finally:
        pub.close()


def test_metadata_yml_describes_no_served_mart():
    """One owner: a mart is described in its dbt yml, never again in metadata.yml."""
    hand = yaml.safe_load(METADATA.read_text())["databases"]["pulse"]["tables"]
    assert not set(hand) & set(catalog.load().names())


def test_the_plugin_serves_the_manifests_charts():
    assert dict(CHARTS.items()) == catalog.load().charts() == FORAGE


def test_a_served_node_without_a_label_is_an_error():
    node = {
        "unique_id": "model.pisa_pulse.x",
        "name": "x",
        "resource_type": "model",
        "schema": "marts",
        "tags": ["served"],
        "config": {"meta": {"served": {"refresh": "every_publication"}}},
        "columns": {},
    }
    with pytest.raises(catalog.CatalogError, match="label"):
        catalog.from_manifest({"nodes": {"model.pisa_pulse.x": node}})
    node["config"]["meta"]["served"] = {"label": "X", "refresh": "hourly"}
    with pytest.raises(catalog.CatalogError, match="refresh"):
        catalog.from_manifest({"nodes": {"model.pisa_pulse.x": node}})
