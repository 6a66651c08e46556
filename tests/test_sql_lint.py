"""sqlfluff (dbt templater, .sqlfluff at the root) is clean on every model, macro and dbt test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pulse import config
from pulse.dbt import dbt_environ

LINTED = ["models", "macros", "tests/dbt"]
# A quick subset for the default run: the indices models (the full lint takes ~3-5 minutes
# here because the dbt templater compiles every file).
QUICK = ["models/intermediate/int_student_indices.sql", "models/intermediate/int_pared_years.sql"]


def _lint(paths, fresh_db, tmp_path):
    # The dbt templater compiles the project against a warehouse: give it a private one.
    env = dbt_environ(fresh_db("lint"))
    env["DBT_TARGET_PATH"] = str(tmp_path / "target")
    env["DBT_LOG_PATH"] = str(tmp_path / "logs")
    sqlfluff = Path(sys.executable).with_name("sqlfluff")
    result = subprocess.run(
        [str(sqlfluff), "lint", *paths, "--disable-progress-bar"],
        cwd=config.REPO_ROOT,
        env=env,
        text=True,
        capture_output=True,
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0, report[-8000:]
    assert "All Finished" in report


@pytest.mark.slow
def test_sqlfluff_lint_is_clean(fresh_db, tmp_path):
    _lint(LINTED, fresh_db, tmp_path)


def test_sqlfluff_lint_indices_models(fresh_db, tmp_path):
    _lint(QUICK, fresh_db, tmp_path)
