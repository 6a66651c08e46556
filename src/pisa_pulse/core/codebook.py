"""The PISA 2018 student codebook (data/pisa2018/codebook_student_2018.json)."""

from __future__ import annotations

import json
from functools import cache

from pisa_pulse.core.config import REPO_ROOT

DATA_DIR = REPO_ROOT / "data" / "pisa2018"
CODEBOOK_PATH = DATA_DIR / "codebook_student_2018.json"


@cache
def entries() -> list[dict]:
    return json.loads(CODEBOOK_PATH.read_text())["codebook_entries"]


@cache
def variables() -> list[str]:
    """Every variable of the student file, in codebook order, lower-case."""
    return [e["variable_key"].lower() for e in entries()]


@cache
def countries() -> list[str]:
    """The CNT codes the codebook lists (82), upper-case, in codebook order."""
    cnt = next(e for e in entries() if e["variable_key"] == "CNT")
    return [kv["key"] for kv in cnt["variable_key_value"]]


@cache
def country_names() -> dict[str, str]:
    cnt = next(e for e in entries() if e["variable_key"] == "CNT")
    return {kv["key"]: kv["value"] for kv in cnt["variable_key_value"]}
