"""Quarantine checks on COPY text, and the CLI's interval floor (no database needed)."""

from __future__ import annotations

import argparse

import pytest

from pisa_pulse.cli.load import register
from pisa_pulse.loader.validate import split_valid

NAMES = ["id", "created_at", "a", "b"]


def test_clean_buffer_passes_untouched():
    data = b"1\t2026-01-01 00:00:00+00\tx\t\\N\n2\t2026-01-01 00:00:00+00\ty\tz\n"
    assert split_valid(data, NAMES, 30) == (data, [])


def test_bad_lines_are_rejected_with_reason_and_column():
    data = (
        b"1\tt\tok\tok\n"
        b"2\tt\t\xff\xfe\tok\n"
        b"3\tt\tok\t" + b"x" * 11 + b"\n"
        b"4\tt\tok\t" + b"\\\\" * 10 + b"\n"  # 10 escaped backslashes: 10 characters
    )
    good, rejected = split_valid(data, NAMES, 10)
    assert good == b"1\tt\tok\tok\n4\tt\tok\t" + b"\\\\" * 10 + b"\n"
    assert [(r.id, r.reason, r.column) for r in rejected] == [
        (2, "invalid UTF-8", "a"),
        (3, "value longer than 10 characters", "b"),
    ]
    assert "\\xff" in rejected[0].row_text


def test_interval_below_100_ms_is_refused():
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    assert parser.parse_args(["load", "--interval", "0.1"]).interval == 0.1
    with pytest.raises(SystemExit):
        parser.parse_args(["load", "--interval", "0.05"])
