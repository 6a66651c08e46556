"""docs/cli.md lists the exit codes `pulse` really uses."""

from __future__ import annotations

import re

from pisa_pulse.cli import main as cli_main
from pisa_pulse.core import config
from pisa_pulse.ops.supervisor import EXIT_GAVE_UP

DOC = config.REPO_ROOT / "docs" / "cli.md"


def _table() -> dict[str, str]:
    rows = {}
    for line in DOC.read_text().splitlines():
        m = re.match(r"^\| (\d+|\*n\*) \| (.*)$", line)
        if m:
            rows[m.group(1)] = m.group(2)
    return rows


def test_the_documented_codes_are_the_ones_main_returns(monkeypatch, capsys):
    rows = _table()
    assert {"0", "1", "2", "130"} <= set(rows)
    assert "gave up" in rows[str(EXIT_GAVE_UP)] and "EXIT_GAVE_UP" in rows[str(EXIT_GAVE_UP)]
    assert "not configured" in rows["2"]

    def interrupted(args):
        raise KeyboardInterrupt

    def unconfigured(args):
        raise config.NotConfigured("no warehouse URL")

    monkeypatch.setattr(cli_main, "cmd_status", interrupted)
    assert cli_main.main(["status"]) == 130
    monkeypatch.setattr(cli_main, "cmd_status", unconfigured)
    assert cli_main.main(["status"]) == 2
    assert capsys.readouterr().err.startswith("pulse: ")
