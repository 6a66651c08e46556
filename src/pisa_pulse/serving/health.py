"""How fresh the published data are: the publication's metadata, the data's age, health.

The publisher writes one `publication` row (`published_at`, …) in the same transaction as the
tables, and the `freshness` mart (per source: `lag_ms` at publication time, `status`,
`last_error`; the `overall` row adds `tail_rows`, dbt's backlog). Both are read once per
publication (`Publication.from_rows`); a request then only subtracts two clocks, so the
`/forage/*` headers and the health URL cost O(1) per request.

Ages are measured by the server's clock (the publisher runs on the same machine), never the
browser's: a dashboard left open on a laptop with a wrong clock still sees the truth.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import format_datetime

# Environment variables holding the health thresholds (documented in docs/serving.md).
ENV_PUBLICATION_AGE = "PULSE_HEALTH_MAX_PUBLICATION_AGE_S"
ENV_SOURCE_LAG = "PULSE_HEALTH_MAX_SOURCE_LAG_S"
ENV_BACKLOG = "PULSE_HEALTH_MAX_BACKLOG_ROWS"


@dataclass(frozen=True)
class Thresholds:
    """Beyond these the data are stale and the health URL answers 503."""

    # The loop republishes at least every 0.5 s (the freshness mart changes with the clock),
    # so 5 s without a publication means the loop or `pulse publish` has stopped or is stuck.
    publication_age_s: float = 5.0
    # The loader polls every source continuously; 10 s behind is a source (or the loader) in
    # trouble, well before GEI's one-minute level.
    source_lag_s: float = 10.0
    # Rows beyond dbt's state mark (the serving views compute them on every read): a growing
    # backlog means the dbt ticks of the loop have stopped folding them in.
    backlog_rows: int = 100_000

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Thresholds:
        """The defaults, overridden by the environment; a bad value is an error at start-up."""
        values = {}
        for name, attr, kind in (
            (ENV_PUBLICATION_AGE, "publication_age_s", float),
            (ENV_SOURCE_LAG, "source_lag_s", float),
            (ENV_BACKLOG, "backlog_rows", int),
        ):
            text = environ.get(name, "").strip()
            if text:
                try:
                    value = kind(text)
                except ValueError:
                    raise ValueError(f"{name}={text!r}: expected a {kind.__name__}") from None
                if value <= 0:
                    raise ValueError(f"{name}={text!r}: must be positive")
                values[attr] = value
        return cls(**values)

    def as_json(self) -> dict:
        return {
            ENV_PUBLICATION_AGE: self.publication_age_s,
            ENV_SOURCE_LAG: self.source_lag_s,
            ENV_BACKLOG: self.backlog_rows,
        }


@dataclass(frozen=True)
class Source:
    name: str
    lag_s: float | None  # how far behind the source the warehouse was, at publication
    status: str | None
    last_error: str | None


@dataclass(frozen=True)
class Publication:
    """One publication's metadata, with its response headers pre-encoded."""

    published_at: str  # ISO 8601, UTC, milliseconds (as the publisher wrote it)
    published_ts: float  # the same, seconds since the epoch
    source_lag_s: float | None  # the worst source's lag at publication (freshness overall)
    backlog_rows: int | None
    sources: tuple[Source, ...] = ()
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)

    @classmethod
    def from_rows(cls, publication: list[Mapping], freshness: list[Mapping]) -> Publication | None:
        """None before the first publication (the table exists but is empty)."""
        if not publication or not publication[0].get("published_at"):
            return None
        published_at = publication[0]["published_at"]
        when = dt.datetime.fromisoformat(published_at)
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        sources, overall = [], None
        for row in freshness:
            lag_ms = row.get("lag_ms")
            src = Source(
                name=str(row.get("source")),
                lag_s=None if lag_ms is None else float(lag_ms) / 1000,
                status=row.get("status"),
                last_error=row.get("last_error"),
            )
            if src.name == "overall":
                overall = row
            else:
                sources.append(src)
        if overall is not None and overall.get("lag_ms") is not None:
            source_lag = float(overall["lag_ms"]) / 1000
        else:
            lags = [s.lag_s for s in sources if s.lag_s is not None]
            source_lag = max(lags) if lags else None
        backlog = overall.get("tail_rows") if overall is not None else None
        headers = [
            (b"last-modified", format_datetime(when.astimezone(dt.UTC), usegmt=True).encode()),
            (b"x-pulse-published-at", published_at.encode()),
        ]
        return cls(
            published_at=published_at,
            published_ts=when.timestamp(),
            source_lag_s=source_lag,
            backlog_rows=None if backlog is None else int(backlog),
            sources=tuple(sources),
            headers=headers,
        )

    def age(self, now: float) -> float:
        """Seconds since this publication was written."""
        return max(0.0, now - self.published_ts)

    def data_age(self, now: float) -> float:
        """How old the newest data shown can be: the sources' lag when published, plus the
        time since (the `freshness` mart's definition, carried forward by the server's clock)."""
        return self.age(now) + (self.source_lag_s or 0.0)

    def age_headers(self, now: float) -> list[tuple[bytes, bytes]]:
        return [*self.headers, (b"x-pulse-data-age", f"{self.data_age(now):.3f}".encode())]


def _seconds(value: float) -> str:
    return f"{value:.1f} s"


def reasons(pub: Publication | None, limits: Thresholds, now: float) -> list[dict]:
    """Why the data are stale: one {component, message} per problem; empty when fresh."""
    if pub is None:
        return [{"component": "publisher", "message": "waiting for the first publication"}]
    found = []
    age = pub.age(now)
    if age > limits.publication_age_s:
        found.append({
            "component": "publisher",
            "message": f"no publication for {_seconds(age)} (limit "
            f"{_seconds(limits.publication_age_s)}): the real-time loop (pulse run) or "
            "pulse publish has stopped or is stuck",
        })  # fmt: skip
    late = [s for s in pub.sources if s.lag_s is not None and s.lag_s > limits.source_lag_s]
    if late and len(late) == len(pub.sources):
        worst = max(s.lag_s for s in late)
        found.append({
            "component": "loop",
            "message": f"the loader had read none of the {len(late)} sources for "
            f"{_seconds(worst)} (limit {_seconds(limits.source_lag_s)})",
        })  # fmt: skip
    else:
        for s in late:
            detail = f", status {s.status}" if s.status and s.status != "ok" else ""
            detail += f": {s.last_error}" if s.last_error else ""
            found.append({
                "component": "source",
                "source": s.name,
                "message": f"{s.name} not read for {_seconds(s.lag_s)} "
                f"(limit {_seconds(limits.source_lag_s)}){detail}",
            })  # fmt: skip
    if pub.backlog_rows is not None and pub.backlog_rows > limits.backlog_rows:
        found.append({
            "component": "loop",
            "message": f"{pub.backlog_rows:,} rows not yet folded into dbt's state (limit "
            f"{limits.backlog_rows:,}): the loop's dbt ticks are behind",
        })  # fmt: skip
    return found


def report(pub: Publication | None, limits: Thresholds, now: float) -> tuple[int, dict]:
    """(HTTP status, JSON body) of the health URL: 200 fresh, 503 stale or not yet published."""
    found = reasons(pub, limits, now)
    body: dict = {
        "status": "fresh" if not found else ("waiting" if pub is None else "stale"),
        "reasons": found,
        "server_time": dt.datetime.fromtimestamp(now, dt.UTC).isoformat(timespec="milliseconds"),
        "thresholds": limits.as_json(),
    }
    if pub is not None:
        body.update(
            published_at=pub.published_at,
            publication_age_s=round(pub.age(now), 3),
            data_age_s=round(pub.data_age(now), 3),
            source_lag_s=None if pub.source_lag_s is None else round(pub.source_lag_s, 3),
            backlog_rows=pub.backlog_rows,
            sources=len(pub.sources),
        )
    return (200 if not found else 503), body
