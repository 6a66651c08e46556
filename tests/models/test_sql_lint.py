"""sqlfluff (dbt templater, .sqlfluff at the root) is clean on every model, macro and dbt test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pisa_pulse.core import config
from pisa_pulse.core.dbt import dbt_environ

LINTED = ["models", "macros", "tests/dbt"]


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


def test_sqlfluff_lint_is_clean(fresh_db, tmp_path):
    _lint(LINTED, fresh_db, tmp_path)
