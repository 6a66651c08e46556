"""Progress bars of long CLI work: on stderr with rate and ETA, only on a TTY or --progress."""

from __future__ import annotations

import io
import re

import pytest

from pisa_pulse.cli import progress
from pisa_pulse.cli.main import build_parser
from pisa_pulse.indices import calibrate

COUNTRIES = ["ALB", "FRA", "ITA", "MEX"]


class _TTY(io.StringIO):
    def isatty(self):
        return True


def test_enabled_follows_the_flag_then_the_terminal():
    assert progress.enabled(True, io.StringIO())
    assert not progress.enabled(False, _TTY())
    assert progress.enabled(None, _TTY())
    assert not progress.enabled(None, io.StringIO())


@pytest.fixture
def fake_calibration(monkeypatch):
    """calibrate_homepos as the CLI sees it, without a warehouse: one call per country."""
    calls = []

    def fake(target, countries=None, progress=None, **kwargs):
        report = calibrate.CalibrationReport()
        for done, cnt in enumerate(COUNTRIES):
            if progress is not None:
                progress(cnt, done, len(COUNTRIES))
            calls.append(cnt)
            report.countries.append(calibrate.CountryOutcome(cnt, "up_to_date"))
        return report

    monkeypatch.setattr(calibrate, "calibrate_homepos", fake)
    return calls


def _run(argv):
    args = build_parser().parse_args(argv)
    return args.func(args)


def test_calibrate_homepos_progress_per_country_on_stderr(fake_calibration, capsys):
    assert _run(["calibrate", "homepos", "--url", "postgresql://unused", "--progress"]) == 0
    out, err = capsys.readouterr()
    assert fake_calibration == COUNTRIES
    # The last state of the bar: every country, a rate (countries per second) and the ETA slot.
    final = err.replace("\r", "\n").strip().splitlines()[-1]
    assert re.search(r"calibrate homepos: 100%.*4/4 \[[0-9:]+<[0-9:]+, .*country/s", final), err
    assert "done" in final
    # The report itself stays on stdout, and the bar never goes there.
    assert all(c in out for c in COUNTRIES) and "calibrate homepos:" not in out


def test_no_progress_when_stderr_is_not_a_terminal(fake_calibration, capsys):
    # capsys's stderr is not a TTY: the log of a `pulse run` job stays clean.
    assert _run(["calibrate", "homepos", "--url", "postgresql://unused"]) == 0
    _, err = capsys.readouterr()
    assert err == ""
    assert _run(["calibrate", "homepos", "--url", "postgresql://unused", "--no-progress"]) == 0
    assert capsys.readouterr().err == ""
