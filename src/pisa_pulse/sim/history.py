"""A day of history: backdated `created_at` with a daily rhythm by each country's local time.

A backfill with `hours=N` spreads its rows over the N hours before it starts. Within the
window a country's rows fall into each UTC hour in proportion to DAILY_RHYTHM at that
hour's local time (UTC_OFFSETS), uniformly within the hour, so the over-time chart shows
the world waking up country by country instead of one spike at the current hour.
"""

from __future__ import annotations

import bisect
import random
from datetime import UTC, datetime, timedelta
from functools import cache
from itertools import accumulate

# Relative submission activity by local hour 0..23: school hours (8:00-15:59) carry
# about 70 % of a day's submissions, nights almost none. A demo shape, not a measurement.
DAILY_RHYTHM: tuple[float, ...] = (
    0.3, 0.2, 0.1, 0.1, 0.1, 0.2, 0.5, 1.5,  # 0-7
    5.0, 8.0, 10.0, 10.0, 8.0, 9.0, 10.0, 8.0,  # 8-15: school hours
    4.0, 2.5, 2.0, 2.0, 1.5, 1.0, 0.7, 0.5,  # 16-23
)  # fmt: skip

# Hours ahead of UTC of each country's capital (or the city/region itself) in December,
# daylight saving time included where it applies then (AUS Sydney +11, NZL +13, CHL -3);
# whole hours only. Large countries get one zone: CAN and USA Eastern, RUS and QMC/QMR
# Moscow, BRA Brasilia, MEX Mexico City, IDN Jakarta, KAZ Astana.
UTC_OFFSETS: dict[str, int] = {
    "ALB": 1, "ARE": 4, "ARG": -3, "AUS": 11, "AUT": 1, "BEL": 1, "BGR": 2, "BIH": 1,
    "BLR": 3, "BRA": -3, "BRN": 8, "CAN": -5, "CHE": 1, "CHL": -3, "COL": -5, "CRI": -6,
    "CZE": 1, "DEU": 1, "DNK": 1, "DOM": -4, "ESP": 1, "EST": 2, "FIN": 2, "FRA": 1,
    "GBR": 0, "GEO": 4, "GRC": 2, "HKG": 8, "HRV": 1, "HUN": 1, "IDN": 7, "IRL": 0,
    "ISL": 0, "ISR": 2, "ITA": 1, "JOR": 3, "JPN": 9, "KAZ": 5, "KOR": 9, "KSV": 1,
    "LBN": 2, "LTU": 2, "LUX": 1, "LVA": 2, "MAC": 8, "MAR": 1, "MDA": 2, "MEX": -6,
    "MKD": 1, "MLT": 1, "MNE": 1, "MYS": 8, "NLD": 1, "NOR": 1, "NZL": 13, "PAN": -5,
    "PER": -5, "PHL": 8, "POL": 1, "PRT": 0, "QAT": 3, "QAZ": 4, "QCI": 8, "QCY": 2,
    "QMC": 3, "QMR": 3, "QRT": 3, "ROU": 2, "RUS": 3, "SAU": 3, "SGP": 8, "SRB": 1,
    "SVK": 1, "SVN": 1, "SWE": 1, "TAP": 8, "THA": 7, "TUR": 3, "UKR": 2, "URY": -3,
    "USA": -5, "VNM": 7,
}  # fmt: skip


def rhythm(country: str, utc_hour: int) -> float:
    """Relative activity of a country at a UTC hour of the day."""
    return DAILY_RHYTHM[(utc_hour + UTC_OFFSETS.get(country, 0)) % 24]


class History:
    """Backdated submission times over the `hours` before `end` (default: now, UTC)."""

    def __init__(self, hours: float, end: datetime | None = None):
        if not hours > 0:
            raise ValueError("hours must be > 0")
        self.end = end or datetime.now(UTC)
        self.start = self.end - timedelta(hours=hours)
        first = self.start.replace(minute=0, second=0, microsecond=0)
        # (bin start, bin end) per UTC hour touching the window, clipped to it
        self.bins: list[tuple[datetime, datetime]] = []
        t = first
        while t < self.end:
            self.bins.append((max(t, self.start), min(t + timedelta(hours=1), self.end)))
            t += timedelta(hours=1)

    @cache  # noqa: B019 - one History per backfill, a few dozen countries
    def _cum(self, country: str) -> list[float]:
        return list(
            accumulate(rhythm(country, a.hour) * (b - a).total_seconds() for a, b in self.bins)
        )

    def expected_share(self, country: str) -> list[float]:
        """Share of a country's rows expected in each bin (self.bins order)."""
        cum = self._cum(country)
        return [(b - a) / cum[-1] for a, b in zip([0.0] + cum[:-1], cum, strict=True)]

    def draw(self, country: str, n: int, rng: random.Random) -> list[str]:
        """n submission times as timestamptz text, drawn by the country's rhythm."""
        cum = self._cum(country)
        total = cum[-1]
        out = []
        for _ in range(n):
            i = min(bisect.bisect(cum, rng.random() * total), len(cum) - 1)
            a, b = self.bins[i]
            at = a + (b - a) * rng.random()
            out.append(at.isoformat(sep=" "))
        return out
