"""Forage's five charts: query parameters and the exact JSON shapes of docs/forage-charts.md.

Pure functions over rows (dicts) of the published tables, so the rules are testable without a
server. Country filtering happens here, in Python, so no query string ever reaches SQL.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

# Upper-case ISO 3166-1 alpha-3 codes separated by commas. Lower-case letters are accepted too
# (and upper-cased): a code means the same country in any case. Anything else is malformed.
_COUNTRIES_RE = re.compile(r"[A-Za-z]{3}(?:,[A-Za-z]{3})*")
MAX_COUNTRIES_CHARS = 4 * 300  # room for every ISO code; longer values are malformed
GRANULARITIES = ("hour", "minute")


class BadRequest(ValueError):
    """A malformed query: answered with HTTP 400 and {"error": message}."""


def single(params: Mapping[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise BadRequest(f"'{name}' given {len(values)} times; give it once")
    return values[0]


def parse_countries(value: str | None) -> frozenset[str] | None:
    """None (every country) when absent or empty, else the set of upper-case codes."""
    if value is None or value == "":
        return None
    if len(value) > MAX_COUNTRIES_CHARS or not _COUNTRIES_RE.fullmatch(value):
        raise BadRequest(
            "countries must be ISO 3166-1 alpha-3 codes separated by commas, e.g. FRA,GBR,ESP"
        )
    return frozenset(value.upper().split(","))


def parse_granularity(value: str | None) -> str:
    if value is None or value == "":
        return "hour"
    if value not in GRANULARITIES:
        raise BadRequest("granularity must be 'hour' or 'minute'")
    return value


def _selected(rows: Iterable[Mapping], countries: frozenset[str] | None) -> list[Mapping]:
    chosen = [r for r in rows if r["country"] is not None]
    if countries is not None:
        chosen = [r for r in chosen if r["country"] in countries]
    return sorted(chosen, key=lambda r: r["country"])


def submissions(rows: list[Mapping]) -> dict:
    return {"count": int(rows[0]["count"] or 0) if rows else 0}


def submissions_over_time(rows: list[Mapping], granularity: str) -> dict:
    points = sorted((r for r in rows if r["granularity"] == granularity), key=_bucket)
    return {
        "datasets": [
            {
                "id": "Submissions",
                "data": [{"x": r["label"], "y": int(r["submissions"] or 0)} for r in points],
            }
        ]
    }


def _bucket(row: Mapping) -> str:
    return row["bucket_start"] or ""


def learning_hours(rows: list[Mapping], countries: frozenset[str] | None) -> dict:
    return {
        "datasets": [
            {"country": r["country"], "hours": int(round(r["hours"]))}
            for r in _selected(rows, countries)
            if r["hours"] is not None
        ]
    }


def escs(rows: list[Mapping], countries: frozenset[str] | None) -> dict:
    return {
        "datasets": [
            {"id": r["country"], "value": round(float(r["value"]), 3)}
            for r in _selected(rows, countries)
            if r["value"] is not None
        ]
    }


def early_education_and_belonging(rows: list[Mapping], countries: frozenset[str] | None) -> dict:
    return {
        "datasets": [
            {
                "id": r["country"],
                "data": [
                    {
                        "x": round(float(r["durecec_mean"]), 2),
                        "y": round(float(r["belong_mean"]), 3),
                        "submissions": int(r["submissions"] or 0),
                    }
                ],
            }
            for r in _selected(rows, countries)
            if r["durecec_mean"] is not None and r["belong_mean"] is not None
        ]
    }
