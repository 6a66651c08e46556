"""What is served, from dbt's manifest: the one owner of the list of published marts.

Every relation published to Datasette carries the dbt tag `served` and `meta.served` in its
yml (models/marts/**/*.yml, snapshots/*.yml): `label` (Datasette's title), `refresh`
(`every_publication`, or `analyst_interval`: re-read at most every few seconds), optional
`facets`, `sort` / `sort_desc`, `units`, and for the Forage views `chart` and `forage_path`.
Its description and its columns' descriptions are dbt's. This module reads them from
`target/manifest.json` (dbt's default target path in the project, `config.REPO_ROOT`), running
`dbt parse` there first when the manifest is missing or older than the project's files, and
gives the publisher, the loop's split publisher, the Forage plugin, `pulse check` and
Datasette's metadata the same answer.

    cat = catalog.load()
    cat.names()                       # every served relation, fast ones first
    cat.charts()                      # {"submissions": "forage_submissions", …}
    cat.datasette_tables()            # Datasette's per-table metadata
"""

from __future__ import annotations

import fcntl
import functools
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from pisa_pulse.core import config

TAG = "served"
EVERY_PUBLICATION = "every_publication"
ANALYST_INTERVAL = "analyst_interval"
REFRESHES = (EVERY_PUBLICATION, ANALYST_INTERVAL)
# The project's files whose change can change the manifest (yml meta, descriptions, docs).
_PROJECT_DIRS = ("models", "snapshots", "macros", "seeds")
_PROJECT_FILES = ("dbt_project.yml", "selectors.yml")
# dbt parse does not connect; the profile only needs to render.
_PARSE_URL = "postgresql://127.0.0.1:5432/warehouse"
log = logging.getLogger(__name__)


class CatalogError(RuntimeError):
    """The manifest is missing, unreadable, or a served node's meta is malformed."""


@dataclass(frozen=True)
class ServedMart:
    name: str  # the relation's name: the same table name in the SQLite file
    schema: str  # its schema in the warehouse (marts, snapshots)
    resource_type: str  # model or snapshot
    description: str
    columns: dict[str, str] = field(hash=False)  # documented column → description
    label: str = ""
    refresh: str = EVERY_PUBLICATION
    facets: tuple[str, ...] = ()
    sort: str | None = None
    sort_desc: str | None = None
    units: dict[str, str] = field(default_factory=dict, hash=False)
    chart: str | None = None
    forage_path: str | None = None

    @property
    def every_publication(self) -> bool:
        return self.refresh == EVERY_PUBLICATION

    def datasette(self) -> dict:
        """This table's entry in Datasette's metadata (`databases.pulse.tables.<name>`)."""
        meta: dict = {"title": self.label, "description": self.description}
        if self.columns:
            meta["columns"] = dict(self.columns)
        if self.facets:
            meta["facets"] = list(self.facets)
        if self.sort:
            meta["sort"] = self.sort
        if self.sort_desc:
            meta["sort_desc"] = self.sort_desc
        if self.units:
            meta["units"] = dict(self.units)
        return meta


@dataclass(frozen=True)
class Catalog:
    marts: tuple[ServedMart, ...]
    manifest_path: Path | None = None

    def __getitem__(self, name: str) -> ServedMart:
        for mart in self.marts:
            if mart.name == name:
                return mart
        raise KeyError(name)

    def names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.marts)

    def every_publication(self) -> tuple[str, ...]:
        """Read at every publication: what Forage polls, and the freshness it reports."""
        return tuple(m.name for m in self.marts if m.every_publication)

    def analyst_interval(self) -> tuple[str, ...]:
        """Read at most every analyst interval (slow marts, the snapshot)."""
        return tuple(m.name for m in self.marts if not m.every_publication)

    def schemas(self) -> dict[str, str]:
        return {m.name: m.schema for m in self.marts}

    def charts(self) -> dict[str, str]:
        """Forage chart (`/forage/<chart>`) → the published table it reads."""
        return {m.chart: m.name for m in self.marts if m.chart}

    def datasette_tables(self) -> dict[str, dict]:
        return {m.name: m.datasette() for m in self.marts}


def _served_mart(node: dict, nodes: dict) -> ServedMart:
    meta = (node.get("config") or {}).get("meta", {}).get(TAG) or node.get("meta", {}).get(TAG)
    where = f"{node['unique_id']} ({node.get('original_file_path')})"
    if not isinstance(meta, dict) or not meta.get("label"):
        raise CatalogError(f"{where}: tag {TAG!r} but no meta.served.label")
    refresh = meta.get("refresh", EVERY_PUBLICATION)
    if refresh not in REFRESHES:
        raise CatalogError(f"{where}: meta.served.refresh {refresh!r} not one of {REFRESHES}")
    columns = {c: (v.get("description") or "").strip() for c, v in node["columns"].items()}
    # A snapshot (or any served node) repeats its parent's columns: where its own yml says
    # nothing about a column, the parent's description is the column's (one owner).
    for parent_id in node.get("depends_on", {}).get("nodes", []):
        parent = nodes.get(parent_id)
        if parent and node["resource_type"] == "snapshot":
            for c, v in parent["columns"].items():
                if not columns.get(c) and v.get("description"):
                    columns[c] = v["description"].strip()
    return ServedMart(
        name=node.get("alias") or node["name"],
        schema=node["schema"],
        resource_type=node["resource_type"],
        description=" ".join((node.get("description") or "").split()),
        columns={c: " ".join(d.split()) for c, d in columns.items() if d},
        label=meta["label"],
        refresh=refresh,
        facets=tuple(meta.get("facets") or ()),
        sort=meta.get("sort"),
        sort_desc=meta.get("sort_desc"),
        units=dict(meta.get("units") or {}),
        chart=meta.get("chart"),
        forage_path=meta.get("forage_path"),
    )


def from_manifest(manifest: dict, path: Path | None = None) -> Catalog:
    """The served relations of a parsed manifest: the every-publication ones first (Forage's
    charts first among them), then the analyst ones; by name within each group."""
    nodes = manifest["nodes"]
    marts = [
        _served_mart(n, nodes)
        for n in nodes.values()
        if n["resource_type"] in ("model", "snapshot") and TAG in n.get("tags", ())
    ]
    marts.sort(key=lambda m: (not m.every_publication, m.chart is None, m.name))
    return Catalog(tuple(marts), path)


# -- where the manifest comes from -------------------------------------------------------------


def target_dir() -> Path:
    """dbt's default target folder of the project (`dbt parse` writes manifest.json there)."""
    return Path(os.environ.get("PULSE_CATALOG_TARGET") or config.REPO_ROOT / "target")


def _newest_project_mtime(root: Path) -> float:
    newest = 0.0
    for name in _PROJECT_FILES:
        p = root / name
        if p.exists():
            newest = max(newest, p.stat().st_mtime)
    for d in _PROJECT_DIRS:
        for dirpath, _, files in os.walk(root / d):
            for f in files:
                if f.endswith((".yml", ".yaml", ".sql", ".md", ".csv")):
                    newest = max(newest, os.stat(os.path.join(dirpath, f)).st_mtime)
    return newest


def _fresh(manifest: Path) -> bool:
    return manifest.exists() and manifest.stat().st_mtime >= _newest_project_mtime(config.REPO_ROOT)


def ensure_manifest(target: Path | None = None) -> Path:
    """target/manifest.json, parsed anew (`dbt parse`) when missing or older than the project.

    One parse at a time (a lock file beside it): `pulse serve` and `pulse run` start together.
    If the parse fails (a yml being edited) an existing manifest is used, with a warning."""
    from pisa_pulse.core.dbt import run_dbt

    target = Path(target or target_dir())
    manifest = target / "manifest.json"
    if _fresh(manifest):
        return manifest
    target.mkdir(parents=True, exist_ok=True)
    with open(target / ".served-catalog.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _fresh(manifest):  # another process parsed while we waited
            return manifest
        result = run_dbt(
            ["parse", "--quiet"],
            _PARSE_URL,
            target_path=target,
            log_path=target / "logs",
            check=False,
        )
        if result.returncode != 0:
            output = ((result.stdout or "") + (result.stderr or ""))[-2000:]
            if not manifest.exists():
                raise CatalogError(f"dbt parse failed and there is no {manifest}:\n{output}")
            log.warning("dbt parse failed; serving the catalog of %s:\n%s", manifest, output)
    return manifest


def read(manifest_path: str | Path) -> Catalog:
    """The catalog of one manifest file, as it is (no parse)."""
    path = Path(manifest_path)
    try:
        return from_manifest(json.loads(path.read_text()), path)
    except (OSError, ValueError, KeyError) as exc:
        raise CatalogError(f"cannot read the served marts from {path}: {exc}") from exc


@functools.lru_cache(maxsize=8)
def _read_cached(path: str, mtime_ns: int) -> Catalog:
    return read(path)


def load(manifest_path: str | Path | None = None) -> Catalog:
    """The served marts: from `manifest_path`, else `$PULSE_MANIFEST`, else the project's
    target/manifest.json (parsed when stale). Cached per file version."""
    explicit = manifest_path or os.environ.get("PULSE_MANIFEST")
    path = Path(explicit) if explicit else ensure_manifest()
    for attempt in range(5):
        try:
            return _read_cached(str(path), path.stat().st_mtime_ns)
        except OSError as exc:
            raise CatalogError(f"no dbt manifest at {path}: {exc}") from exc
        except CatalogError:
            # Another dbt command (same default target) may be rewriting it: read it again.
            if attempt == 4:
                raise
            time.sleep(0.5)
    raise AssertionError("unreachable")
