"""Country facts the simulator needs: ISO numeric codes, OECD membership, sample sizes.

SAMPLE_SIZES approximates the number of students per country in the PISA 2018
student file (OECD, PISA 2018 Database, student questionnaire file; 612,004
students in all), rounded from the published per-country counts. It only steers
how a stream or a backfill spreads rows over countries, so a few percent off
does not matter. FRA, ITA and MEX are the real counts of the full file.
"""

from __future__ import annotations

from functools import cache

from pisa_pulse.core import codebook

SAMPLE_SIZES: dict[str, int] = {
    "ALB": 6359, "ARE": 19277, "ARG": 11975, "AUS": 14273, "AUT": 6802, "BEL": 8475,
    "BGR": 5294, "BIH": 6480, "BLR": 5803, "BRA": 10691, "BRN": 6828, "CAN": 22653,
    "CHE": 5822, "CHL": 7621, "COL": 7522, "CRI": 7221, "CZE": 7019, "DEU": 5451,
    "DNK": 7657, "DOM": 5674, "ESP": 35943, "EST": 5316, "FIN": 5649, "FRA": 6308,
    "GBR": 13818, "GEO": 5572, "GRC": 6403, "HKG": 6037, "HRV": 6609, "HUN": 5132,
    "IDN": 12098, "IRL": 5577, "ISL": 3296, "ISR": 6623, "ITA": 11785, "JOR": 8963,
    "JPN": 6109, "KAZ": 19507, "KOR": 6650, "KSV": 5058, "LBN": 5614, "LTU": 6885,
    "LUX": 5230, "LVA": 5303, "MAC": 3775, "MAR": 6814, "MDA": 5367, "MEX": 7299,
    "MKD": 5569, "MLT": 3363, "MNE": 6666, "MYS": 6111, "NLD": 4765, "NOR": 5813,
    "NZL": 6173, "PAN": 6270, "PER": 6086, "PHL": 7233, "POL": 5625, "PRT": 5932,
    "QAT": 13828, "QAZ": 6827, "QCI": 12058, "QCY": 5503, "QMC": 2016, "QMR": 1933,
    "QRT": 2771, "ROU": 5075, "RUS": 7608, "SAU": 5736, "SGP": 6676, "SRB": 6609,
    "SVK": 5965, "SVN": 6401, "SWE": 5504, "TAP": 7243, "THA": 8633, "TUR": 6890,
    "UKR": 5998, "URY": 5263, "USA": 4838, "VNM": 5377,
}  # fmt: skip

# The 37 countries PISA 2018 reports as OECD members (the file's OECD flag).
OECD_MEMBERS = frozenset(
    "AUS AUT BEL CAN CHL COL CZE DNK EST FIN FRA DEU GRC HUN ISL IRL ISR ITA JPN KOR LVA "
    "LTU LUX MEX NLD NZL NOR POL PRT SVK SVN ESP SWE CHE TUR GBR USA".split()
)

# Countries whose real rows are in data/pisa2018/ (the pool).
POOL_COUNTRIES = ("FRA", "ITA", "MEX")


@cache
def iso_numeric() -> dict[str, int]:
    """CNT code -> CNTRYID, matching the codebook's CNT and CNTRYID labels by country name."""
    by_name = {}
    for entry in codebook.entries():
        if entry["variable_key"] == "CNTRYID":
            by_name = {kv["value"]: int(kv["key"]) for kv in entry["variable_key_value"]}
    return {cnt: by_name[name] for cnt, name in codebook.country_names().items()}


def resolve(countries=None, settings=None) -> list[str]:
    """Upper-case country codes: the given ones, else PULSE_SOURCES, else all 82 of the codebook."""
    if countries is None and settings is not None and settings.sources:
        countries = settings.sources
    if countries is None:
        return list(codebook.countries())
    if isinstance(countries, str):
        countries = [countries]
    known = set(codebook.countries())
    out = []
    for cnt in countries:
        code = cnt.strip().upper()
        if code not in known:
            raise ValueError(f"unknown country code {cnt!r} (not a CNT code of the codebook)")
        out.append(code)
    return out


def weights(countries: list[str], even: bool = False) -> list[float]:
    """Relative share of each country in a stream or backfill (sample sizes, or even)."""
    if even:
        return [1.0] * len(countries)
    return [float(SAMPLE_SIZES.get(c, 5000)) for c in countries]


def split(n: int, countries: list[str], even: bool = False) -> dict[str, int]:
    """Split n rows over countries in proportion to their weights (largest remainder)."""
    w = weights(countries, even)
    total = sum(w)
    exact = [n * x / total for x in w]
    counts = [int(x) for x in exact]
    order = sorted(range(len(w)), key=lambda i: exact[i] - counts[i], reverse=True)
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    return dict(zip(countries, counts, strict=True))
