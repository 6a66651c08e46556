"""The columns to load: those declared for source `pisa`, table `responses` in the dbt YAML."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from pisa_pulse.core.config import REPO_ROOT

SOURCES_YML = REPO_ROOT / "models" / "staging" / "pisa" / "_pisa__sources.yml"

_YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C parser is ~20x faster

# Written by the loader itself, never copied from a source column. The one copy: raw_fixture
# and the benchmarks import it (macros/staging/pisa_codebook.sql keeps a Jinja list, as SQL must).
LOADER_MANAGED = ("cnt", "id", "created_at", "_loaded_at", "_load_seq")


@dataclass(frozen=True)
class Column:
    name: str  # column in raw.responses
    source: str  # column in the application database's public.responses


def declared_columns(path: Path = SOURCES_YML) -> list[Column]:
    """The TEXT columns of raw.responses, in YAML order (re-read on every call: it may change)."""
    spec = yaml.load(Path(path).read_text(), Loader=_YamlLoader)
    source = next(s for s in spec["sources"] if s["name"] == "pisa")
    table = next(t for t in source["tables"] if t["name"] == "responses")
    out = []
    for col in table.get("columns") or []:
        name = col["name"].lower()
        if name in LOADER_MANAGED:
            continue
        meta = col.get("meta") or {}
        out.append(Column(name=name, source=str(meta.get("source_column", name)).lower()))
    return out
