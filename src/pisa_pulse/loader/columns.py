"""The columns to load: those declared for source `pisa`, table `responses` in the dbt YAML."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from pisa_pulse.core.config import REPO_ROOT

SOURCES_YML = REPO_ROOT / "models" / "staging" / "pisa" / "_pisa__sources.yml"

_YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C parser is ~20x faster


@dataclass(frozen=True)
class Column:
    name: str  # column in raw.responses
    source: str  # column in the application database's public.responses


def _yaml_columns(path: Path) -> list[dict]:
    spec = yaml.load(Path(path).read_text(), Loader=_YamlLoader)
    source = next(s for s in spec["sources"] if s["name"] == "pisa")
    table = next(t for t in source["tables"] if t["name"] == "responses")
    return table.get("columns") or []


def _loader_managed(col: dict) -> bool:
    return bool((col.get("meta") or {}).get("loader_managed"))


def declared_columns(path: Path = SOURCES_YML) -> list[Column]:
    """The TEXT columns of raw.responses, in YAML order (re-read on every call: it may change)."""
    out = []
    for col in _yaml_columns(path):
        if _loader_managed(col):
            continue
        meta = col.get("meta") or {}
        name = col["name"].lower()
        out.append(Column(name=name, source=str(meta.get("source_column", name)).lower()))
    return out


# Written by the loader itself, never copied from a source column: the columns the YAML marks
# `meta: {loader_managed: true}` (the one copy; the staging macro pisa_declared_columns() reads
# the same mark). raw_fixture and the benchmarks import this.
LOADER_MANAGED = tuple(c["name"].lower() for c in _yaml_columns(SOURCES_YML) if _loader_managed(c))
