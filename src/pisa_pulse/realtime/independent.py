"""`pulse check --independent`: Forage's five answers recomputed in Python, straight from the
application databases, and compared with what is served.

`pulse check` (check.py) rebuilds the warehouse from scratch with the *same* dbt models, so a
wrong model gives the same wrong number twice. This oracle shares no SQL and no dbt model
with the pipeline:

  - it reads every country's `public.responses` with a plain `select` of the raw TEXT
    columns it needs (no loader, no warehouse tables of rows);
  - it cleans every cell, rebuilds every per-student index, picks the value served, averages
    per country and shapes the five JSON answers in this file, in Python (numpy for the
    HOMEPOS WLE, `decimal` for exact sums);

What it does share, on purpose, because they are the definitions rather than the code:

  - the documented domains of `seeds/codebook_items.csv` (read at run time) and the
    parameter seeds (`seeds/*.csv`: ISEI maps, learned_* tables, the BELONG WLE lookup,
    PAREDINT years, ESCS coefficients, HOMEPOS item parameters);
  - the HOMEPOS calibrations in force: the *parameters* in the warehouse table
    `calibration.homepos_params` (never a computed index);
  - the Python reference of the HOMEPOS Warm WLE (`src/pisa_pulse/indices/homepos_model.py`);
  - on the served side only, `check.served_answers` / the Datasette plugin's `answer` to read
    what is served (that is serving, not computing).

The rules are those of docs/indices.md, docs/domains.md, docs/marts.md and
docs/forage-charts.md; docs/check.md says how the two can legitimately disagree.
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import json
import re
import time
import urllib.request
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Context, Decimal, Inexact, localcontext
from pathlib import Path
from urllib.parse import quote

import numpy as np
import psycopg2

from pisa_pulse.core import config
from pisa_pulse.indices import homepos_model

SEEDS = config.REPO_ROOT / "seeds"

# A number's only spelling (docs/domains.md, "Spellings"), ASCII digits, at most 15 digits
# before and 15 after the point; checked with fullmatch on the trimmed cell.
NUMBER_RE = re.compile(r"[+-]?([0-9]{1,15}([.][0-9]{0,15})?|[.][0-9]{1,15})", re.ASCII)
TRIM = " \t\r\n"

CHARTS = (
    "submissions",
    "submissions_over_time",
    "learning_hours_per_week",
    "escs",
    "early_education_and_belonging",
)
COUNTRY_CHARTS = CHARTS[2:]
# The indices the charts average, and the digits the plugin rounds each to.
CHART_DIGITS = {"hours": 0, "value": 3, "x": 2, "y": 3}

BELONG_ITEMS = ("ST034Q01TA", "ST034Q02TA", "ST034Q03TA", "ST034Q04TA", "ST034Q05TA", "ST034Q06TA")
BELONG_REVERSED = {"ST034Q02TA", "ST034Q03TA", "ST034Q05TA"}  # score 4 - raw
ANSWERS = (
    "W_FSTUWT",
    "ST005Q01TA", "ST006Q01TA", "ST006Q02TA", "ST006Q03TA", "ST006Q04TA",
    "ST007Q01TA", "ST008Q01TA", "ST008Q02TA", "ST008Q03TA", "ST008Q04TA",
    "ST059Q01TA", "ST059Q02TA", "ST059Q03TA", "ST060Q01NA", "ST061Q01NA",
    "ST125Q01NA", "ST126Q01TA", "OCOD1", "OCOD2",
    *BELONG_ITEMS,
    *homepos_model.ITEMS,
)  # fmt: skip
INDICES = (
    "tmins", "lmins", "mmins", "smins", "durecec",
    "misced", "fisced", "hisced", "misced_d", "fisced_d", "hisced_d",
    "paredint", "pared", "bmmj1", "bfmj2", "hisei", "homepos", "belong", "escs",
)  # fmt: skip
COMPUTED_WINS = {"tmins", "lmins", "mmins", "smins", "durecec"}
# PAREDINT and PARED: computed wins only from both parents' levels (docs/domains.md).
BOTH_PARENTS = {"paredint": ("misced_d", "fisced_d"), "pared": ("misced", "fisced")}
EXACT_ISEI = {"observed", "learned"}
MEAN_INDICES = ("tmins", "durecec", "belong", "escs")

# Exact decimal arithmetic for the sums: any rounding raises (it never happens for PISA values).
EXACT = Context(prec=200, traps=[Inexact])
DIVIDE = Context(prec=60)


# -- domains: seeds/codebook_items.csv ---------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Domain:
    kind: str  # text | integer | numeric
    width: int | None
    valid_min: Decimal | None
    valid_max: Decimal | None
    valid_codes: frozenset[str] | None
    missing: tuple[str, ...]


def read_domains(path: Path = SEEDS / "codebook_items.csv") -> dict[str, Domain]:
    """Domains keyed by lower-case column name, read fresh from the CSV."""
    out = {}
    with open(path, newline="") as fh:
        for r in csv.DictReader(fh):
            codes = r["valid_codes"] or ""
            out[r["column_name"]] = Domain(
                kind=r["kind"],
                width=int(r["width"]) if r["width"] else None,
                valid_min=Decimal(r["valid_min"]) if r["valid_min"] else None,
                valid_max=Decimal(r["valid_max"]) if r["valid_max"] else None,
                valid_codes=frozenset(codes.split("|")) if codes else None,
                missing=tuple(m for m in (r["missing_codes"] or "").split("|") if m),
            )
    return out


def clean(raw: str | None, dom: Domain):
    """The cleaned value of one raw TEXT cell: int / Decimal / str, or None when missing."""
    if raw is None:
        return None
    v = raw.strip(TRIM)
    if not v or v.upper() == "NA":
        return None
    if dom.kind == "text":
        t = v
        if dom.valid_codes:
            width = dom.width or 0
            if re.fullmatch(rf"[0-9]{{1,{width}}}([.]0*)?", v, re.ASCII):
                t = re.sub(r"[.]0*\Z", "", v).rjust(width, "0")
            else:
                t = v.upper()
        if t in dom.missing:
            return None
        if dom.valid_codes and t not in dom.valid_codes:
            return None
        return t
    if not NUMBER_RE.fullmatch(v):
        return None
    n = Decimal(v)
    if any(n == Decimal(m) for m in dom.missing):
        return None
    if dom.kind == "integer":
        if n != n.to_integral_value() or abs(n) >= 2**31:
            return None
    if dom.valid_min is not None and n < dom.valid_min:
        return None
    if dom.valid_max is not None and n > dom.valid_max:
        return None
    return int(n) if dom.kind == "integer" else n


# -- parameters: seeds + calibrations in force -------------------------------------------------
def _csv(name: str) -> list[dict[str, str]]:
    with open(SEEDS / name, newline="") as fh:
        return list(csv.DictReader(fh))


@dataclasses.dataclass
class Params:
    isei: dict[str, tuple[Decimal, str]]
    paredint: dict[int, Decimal]
    pared: dict[tuple[str, int], Decimal]
    belong_international: dict[str, Decimal]
    belong_country: dict[tuple[str, str], Decimal]
    escs: dict[str, float]
    escs_imputation: dict[tuple[str, str], tuple[float, float, float, float]]
    homepos_blocks: dict[str, tuple[str, homepos_model.ItemParams]]  # cnt -> (source, params)
    homepos_default: homepos_model.ItemParams

    def homepos(self, cnt: str) -> tuple[str, homepos_model.ItemParams]:
        return self.homepos_blocks.get(cnt, ("default", self.homepos_default))


def read_calibrations(warehouse_url: str | None) -> list[dict]:
    """Rows of the newest calibration version per country (parameters only)."""
    if not warehouse_url:
        return []
    conn = psycopg2.connect(warehouse_url)
    try:
        with conn.cursor() as cur:
            cur.execute("select to_regclass('calibration.homepos_params') is not null")
            if not cur.fetchone()[0]:
                return []
            cur.execute(
                "select cnt, version, item, a, b1, b2, b3, b4, b5 from calibration.homepos_params"
            )
            rows = cur.fetchall()
    finally:
        conn.close()
    newest: dict[str, int] = {}
    for cnt, version, *_ in rows:
        newest[cnt.upper()] = max(version, newest.get(cnt.upper(), version))
    names = ("cnt", "version", "item", "a", "b1", "b2", "b3", "b4", "b5")
    return [
        dict(zip(names, (r[0].upper(), r[1], r[2].upper(), *r[3:]), strict=True))
        for r in rows
        if r[1] == newest[r[0].upper()]
    ]


def _homepos_params(
    international: dict[str, dict], block: dict[str, dict]
) -> homepos_model.ItemParams:
    a = np.zeros(len(homepos_model.ITEMS))
    b = np.zeros((len(homepos_model.ITEMS), homepos_model.MAX_CAT - 1))
    for i, item in enumerate(homepos_model.ITEMS):
        row = block[item] if item in homepos_model.NATIONAL_BLOCK else international[item]
        a[i] = float(row["a"])
        for k in range(homepos_model.MAX_CAT - 1):
            value = row.get(f"b{k + 1}")
            b[i, k] = float(value) if value not in (None, "") else 0.0
    return homepos_model.ItemParams(a, b)


def load_params(warehouse_url: str | None) -> Params:
    isei = {
        r["isco08"]: (Decimal(r["isei_pisa2018"]), "observed")
        for r in _csv("isco08_to_isei_pisa2018_observed.csv")
    }
    for r in _csv("learned_isei_map.csv"):
        isei.setdefault(r["isco08"], (Decimal(r["isei"]), "learned"))
    # the ISEI-08 table PISA 2018 used, for every code the two above lack (docs/indices.md)
    for r in _csv("isco08_to_isei08_ganzeboom.csv"):
        isei.setdefault(r["isco08"], (Decimal(r["isei08"]), "isei08"))
    pared = {
        (r["cnt"], int(r["hisced"])): Decimal(r["pared_years"])
        for r in _csv("pared_years_by_country_observed.csv")
    }
    for r in _csv("learned_pared_years.csv"):
        pared.setdefault((r["cnt"], int(r["hisced"])), Decimal(r["pared_years"]))
    imputation = {
        (r["cnt"], r["component"]): (
            float(r["intercept"]),
            float(r["coef_hisei"]),
            float(r["coef_paredint"]),
            float(r["coef_homepos"]),
        )
        for r in _csv("learned_escs_imputation_params.csv")
    }

    # HOMEPOS: a country's complete seed block first, else its newest complete calibration,
    # else DEFAULT (docs/homepos.md; int_homepos_params).
    item_rows = _csv("homepos_item_params.csv")
    international = {r["item"]: r for r in item_rows if r["scope"] == "international"}
    scopes: dict[str, dict[str, dict]] = {}
    for r in item_rows:
        if r["scope"] != "international":
            scopes.setdefault(r["scope"], {})[r["item"]] = r
    national = set(homepos_model.NATIONAL_BLOCK)
    blocks: dict[str, tuple[str, homepos_model.ItemParams]] = {}
    calibrated: dict[str, dict[str, dict]] = {}
    for r in read_calibrations(warehouse_url):
        calibrated.setdefault(r["cnt"], {})[r["item"]] = r
    for cnt, block in calibrated.items():
        if set(block) == national:
            blocks[cnt] = ("calibration", _homepos_params(international, block))
    for scope, block in scopes.items():
        if scope != "DEFAULT" and set(block) == national:
            blocks[scope] = ("country_seed", _homepos_params(international, block))
    return Params(
        isei=isei,
        paredint={
            int(r["hisced_d"]): Decimal(r["paredint_years"]) for r in _csv("paredint_years.csv")
        },
        pared=pared,
        belong_international={
            r["pattern_key"]: Decimal(r["belong_wle"])
            for r in _csv("belong_wle_lookup_international.csv")
        },
        belong_country={
            (r["cnt"], r["pattern_key"]): Decimal(r["belong_value"])
            for r in _csv("learned_belong_country_patterns.csv")
        },
        escs={r["term"]: float(r["coef"]) for r in _csv("escs_2018_coefficients.csv")},
        escs_imputation=imputation,
        homepos_blocks=blocks,
        homepos_default=_homepos_params(international, scopes["DEFAULT"]),
    )


# -- per-student indices -----------------------------------------------------------------------
def _max(*values):
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _to_numeric(x: float, places: str) -> Decimal:
    """A double as PostgreSQL's numeric cast spells it (15 significant digits), then rounded
    half away from zero to `places` ('0.0001')."""
    return Decimal(f"{x:.15g}").quantize(Decimal(places), rounding=ROUND_HALF_UP)


def parent_isced(level_code, q1, q2, q3, q4, restricted: bool):
    level = None if level_code is None else 5 - level_code
    gate = level_code in (1, 2, 3) if restricted else True
    if gate and (q1 == 1 or q2 == 1):
        return 6
    if gate and q3 == 1:
        return _max(5, level)
    if gate and q4 == 1:
        return _max(4, level)
    return level


def isei(code: str | None, params: Params) -> tuple[Decimal | None, str | None]:
    if code is None:
        return None, None
    if code in params.isei:
        return params.isei[code]
    for group, rule in ((code[:3] + "0", "group_3digit"), (code[:2] + "00", "group_2digit")):
        if group in params.isei:
            return params.isei[group][0], rule
    return None, None


def homepos_scores(a: dict) -> tuple[int, ...]:
    out = []
    for item in homepos_model.ITEMS:
        v = a[item]
        if item.startswith("ST011D"):
            s = -1 if v is None or v.startswith("99999") else {"1": 1, "2": 0}.get(v[-1], -1)
        elif item.startswith("ST011"):
            s = {1: 1, 2: 0}.get(v, -1)
        else:
            n_cat = 6 if item == "ST013Q01TA" else 4
            s = v - 1 if v is not None and 1 <= v <= n_cat else -1
        out.append(s)
    return tuple(out)


def indices(cnt: str, a: dict, official: dict, params: Params, homepos_of) -> dict:
    """Computed, official and served value of every index for one student's cleaned answers.

    `a` holds the cleaned answers keyed by upper-case PISA variable, `official` the cleaned
    official indices (lower-case), `homepos_of(scores)` scores a HOMEPOS pattern."""
    c: dict = {}
    st060, st061 = a["ST060Q01NA"], a["ST061Q01NA"]
    periods = sum(a[q] or 0 for q in ("ST059Q01TA", "ST059Q02TA", "ST059Q03TA"))
    product = None if st060 is None or st061 is None else st060 * st061
    c["tmins"] = product if product is not None and product <= 3000 and st060 >= periods else None
    for x, q in (("lmins", "ST059Q01TA"), ("mmins", "ST059Q02TA"), ("smins", "ST059Q03TA")):
        c[x] = None if a[q] is None or st061 is None else a[q] * st061
    st125, st126 = a["ST125Q01NA"], a["ST126Q01TA"]
    c["durecec"] = None
    if st125 is not None and 1 <= st125 <= 6 and st126 is not None and st126 + 2 - st125 >= 0:
        c["durecec"] = st126 + 2 - st125
    mother = [a[q] for q in ("ST005Q01TA", "ST006Q01TA", "ST006Q02TA", "ST006Q03TA", "ST006Q04TA")]
    father = [a[q] for q in ("ST007Q01TA", "ST008Q01TA", "ST008Q02TA", "ST008Q03TA", "ST008Q04TA")]
    c["misced"] = parent_isced(*mother, restricted=False)
    c["fisced"] = parent_isced(*father, restricted=False)
    c["misced_d"] = parent_isced(*mother, restricted=True)
    c["fisced_d"] = parent_isced(*father, restricted=True)
    c["hisced"] = _max(c["misced"], c["fisced"])
    c["hisced_d"] = _max(c["misced_d"], c["fisced_d"])
    c["paredint"] = params.paredint.get(c["hisced_d"])
    c["pared"] = params.pared.get((cnt, c["hisced"]))
    isco = {
        p: (None if a[q] in ("9704", "9705") else a[q]) for p, q in (("m", "OCOD1"), ("f", "OCOD2"))
    }
    c["bmmj1"], rule_m = isei(isco["m"], params)
    c["bfmj2"], rule_f = isei(isco["f"], params)
    c["hisei"] = _max(c["bmmj1"], c["bfmj2"])
    scores = [
        None if a[q] is None else (a[q] - 1 if q not in BELONG_REVERSED else 4 - a[q])
        for q in BELONG_ITEMS
    ]
    key = "".join("9" if s is None else str(s) for s in scores)
    c["belong"] = None
    if sum(s is not None for s in scores) >= 3:
        c["belong"] = params.belong_country.get((cnt, key), params.belong_international.get(key))

    served: dict = {}
    for x in INDICES:
        if x in ("homepos", "escs"):
            continue
        off = official[x]
        if x in COMPUTED_WINS:
            wins = c[x] is not None
        elif x in ("bmmj1", "bfmj2"):
            wins = (rule_m if x == "bmmj1" else rule_f) in EXACT_ISEI
        elif x in BOTH_PARENTS:
            wins = c[x] is not None and all(c[p] is not None for p in BOTH_PARENTS[x])
        elif x == "hisei":
            wins = rule_m in EXACT_ISEI and rule_f in EXACT_ISEI
        else:
            wins = False
        served[x] = c[x] if wins else (off if off is not None else c[x])

    # HOMEPOS is only needed where no official value is served.
    c["homepos"] = homepos_of(cnt, homepos_scores(a)) if official["homepos"] is None else None
    served["homepos"] = official["homepos"] if official["homepos"] is not None else c["homepos"]

    c["escs"], c["escs_raw"] = escs(
        cnt, served["hisei"], served["paredint"], served["homepos"], params
    )
    served["escs"] = official["escs"] if official["escs"] is not None else c["escs"]
    return {"computed": c, "served": served}


def escs(
    cnt, hisei_v, paredint_v, homepos_v, params: Params
) -> tuple[Decimal | None, float | None]:
    """ESCS from the served components; one missing component is imputed by the country's
    regression (else the pooled one). Double arithmetic, then rounded to 4 decimals."""
    parts = {"hisei": hisei_v, "paredint": paredint_v, "homepos": homepos_v}
    missing = [k for k, v in parts.items() if v is None]
    if len(missing) > 1:
        return None, None
    values = {k: (None if v is None else float(v)) for k, v in parts.items()}
    if missing:
        p = params.escs_imputation.get((cnt, missing[0])) or params.escs_imputation.get(
            ("*", missing[0])
        )
        if p is None:
            return None, None
        h, pi, hp = (values[k] or 0.0 for k in ("hisei", "paredint", "homepos"))
        values[missing[0]] = p[0] + p[1] * h + p[2] * pi + p[3] * hp
    e = params.escs
    x = e["intercept"] + e["HISEI"] * values["hisei"] + e["PAREDINT"] * values["paredint"]
    x = x + e["HOMEPOS"] * values["homepos"]
    return _to_numeric(x, "0.0001"), x


# -- reading the application databases ---------------------------------------------------------
def countries(settings) -> list[str]:
    from pisa_pulse.sim.api import existing_countries

    return [c.upper() for c in existing_countries(settings, settings.sources)]


def read_source(settings, cnt: str) -> Iterable[tuple]:
    """(created_at, {lower-case column: raw text}) for every row of one country."""
    wanted = [v.lower() for v in ANSWERS] + list(INDICES)
    conn = psycopg2.connect(settings.source_url(cnt))
    try:
        with conn.cursor() as cur:
            cur.execute(
                "select column_name from information_schema.columns "
                "where table_schema = 'public' and table_name = 'responses'"
            )
            present = {r[0] for r in cur.fetchall()}
        select = ", ".join(f'"{c}"' if c in present else "null" for c in wanted)
        with conn.cursor(name="pulse_independent") as cur:
            cur.itersize = 5000
            cur.execute(f"select created_at, {select} from public.responses")
            for row in cur:
                yield row[0], dict(zip(wanted, row[1:], strict=True))
    finally:
        conn.close()


# -- country figures ---------------------------------------------------------------------------
@dataclasses.dataclass
class Pieces:
    """Exact additive pieces of one index in one country."""

    n: int = 0
    sum_x: Decimal = Decimal(0)
    sum_w: Decimal = Decimal(0)
    sum_wx: Decimal = Decimal(0)
    fragile_w: Decimal = Decimal(0)  # weight (or count) of rows whose value is float-fragile
    fragile_n: int = 0

    def add(self, w: Decimal | None, x, fragile: bool = False) -> None:
        if x is None:
            return
        x = Decimal(x)
        with localcontext(EXACT):
            self.n += 1
            self.sum_x += x
            if fragile:
                self.fragile_n += 1
            if w is not None and w > 0:
                self.sum_w += w
                self.sum_wx += w * x
                if fragile:
                    self.fragile_w += w

    def mean(self) -> Decimal | None:
        with localcontext(DIVIDE):
            if self.sum_w > 0:
                return self.sum_wx / self.sum_w
            if self.n:
                return self.sum_x / self.n
        return None

    def slack(self, unit: Decimal) -> Decimal:
        """How far legitimate float differences in fragile rows could move the mean."""
        with localcontext(DIVIDE):
            if self.sum_w > 0:
                return unit * self.fragile_w / self.sum_w
            return unit * self.fragile_n / self.n if self.n else Decimal(0)


@dataclasses.dataclass
class CountryFigures:
    submissions: int = 0
    means: dict[str, Pieces] = dataclasses.field(
        default_factory=lambda: {x: Pieces() for x in MEAN_INDICES}
    )


def _fragile(raw: float | None, places: int) -> bool:
    """A value within 1e-6 of a rounding boundary: last-bit differences (numpy vs PL/pgSQL
    WLE, rounded to 6 decimals, times 0.42 in ESCS) could round it the other way."""
    if raw is None:
        return False
    scaled = abs(raw) * 10**places
    return abs(scaled - int(scaled) - 0.5) < 1e-6 * 10**places


def compute(settings, params: Params | None = None, domains: dict[str, Domain] | None = None):
    """Per-country figures and submissions per UTC minute of created_at, from the sources."""
    params = params or load_params(settings.warehouse_url)
    domains = domains or read_domains()
    figures: dict[str, CountryFigures] = {}
    minutes: Counter[datetime] = Counter()

    def rows(cnt: str):
        for created_at, row in read_source(settings, cnt):
            minutes[_truncate(created_at, "minute")] += 1
            yield row

    for cnt in countries(settings):
        figures[cnt] = country_figures(cnt, rows(cnt), params, domains)
    return figures, minutes


def country_figures(
    cnt: str, rows: Iterable[dict], params: Params, domains: dict[str, Domain], chunk: int = 5000
) -> CountryFigures:
    """One country's figures from its raw rows ({lower-case column: text})."""
    for name in [v.lower() for v in ANSWERS] + list(INDICES):
        if name not in domains:
            raise KeyError(f"{name}: no domain in seeds/codebook_items.csv")
    _, block = params.homepos(cnt)
    cache: dict[tuple, Decimal | None] = {}
    out = CountryFigures()
    rows = iter(rows)
    while batch := list(itertools.islice(rows, chunk)):
        cleaned = []
        for raw in batch:
            a = {v: clean(raw[v.lower()], domains[v.lower()]) for v in ANSWERS}
            official = {x: clean(raw[x], domains[x]) for x in INDICES}
            cleaned.append((a, official))
        # Warm WLE of every new pattern of the batch in one numpy call.
        new = {homepos_scores(a) for a, off in cleaned if off["homepos"] is None} - cache.keys()
        if new:
            patterns = sorted(new)
            theta = homepos_model.wle(np.array(patterns), block)
            for pattern, t in zip(patterns, theta, strict=True):
                cache[pattern] = None if np.isnan(t) else _to_numeric(float(t), "0.000001")
        for a, official in cleaned:
            out.submissions += 1
            r = indices(cnt, a, official, params, lambda _c, s: cache[s])
            w = a["W_FSTUWT"]
            for x in MEAN_INDICES:
                fragile = (
                    x == "escs"
                    and official["escs"] is None
                    and _fragile(r["computed"]["escs_raw"], 4)
                )
                out.means[x].add(w, r["served"][x], fragile)
    return out


def _truncate(t: datetime, unit: str) -> datetime:
    t = t.astimezone(UTC)
    return t.replace(minute=t.minute if unit == "minute" else 0, second=0, microsecond=0)


# -- the five answers --------------------------------------------------------------------------
def _round(x: Decimal, digits: int) -> float:
    return round(float(x), digits)  # the plugin's rounding: Python's, on the double


def answers(
    figures: dict[str, CountryFigures], minutes: Counter[datetime], now: datetime | None = None,
    filters: Iterable[str] = (),
) -> tuple[dict[str, dict], dict[str, dict[str, dict]]]:  # fmt: skip
    """(JSON answers keyed by endpoint, unrounded figures per endpoint/country/field)."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    out: dict[str, dict] = {"submissions": {"count": sum(f.submissions for f in figures.values())}}
    for key, unit, n in (
        ("submissions_over_time", "hour", 24),
        ("submissions_over_time:minute", "minute", 60),
    ):
        out[key] = _over_time(minutes, now, unit, n)
    raw: dict[str, dict[str, dict]] = {}
    for chart in COUNTRY_CHARTS:
        for value in ("", *filters):
            key = chart if not value else f"{chart}?countries={value}"
            chosen = None if not value else set(value.upper().split(","))
            out[key], raw[key] = _country_chart(chart, figures, chosen)
    return out, raw


def _over_time(minutes: Counter[datetime], now: datetime, unit: str, n: int) -> dict:
    """The last n UTC buckets up to now's, oldest first, labelled HH:MM, empty ones 0."""
    step = timedelta(hours=1) if unit == "hour" else timedelta(minutes=1)
    last = _truncate(now, unit)
    starts = [last - step * (n - 1 - i) for i in range(n)]
    counts = dict.fromkeys(starts, 0)
    for minute, k in minutes.items():
        bucket = _truncate(minute, unit)
        if bucket in counts:
            counts[bucket] += k
    data = [{"x": s.strftime("%H:%M"), "y": counts[s]} for s in starts]
    return {"datasets": [{"id": "Submissions", "data": data}]}


def _country_chart(chart: str, figures: dict[str, CountryFigures], chosen: set[str] | None):
    data, raw = [], {}
    for cnt in sorted(figures):
        if chosen is not None and cnt not in chosen:
            continue
        f = figures[cnt]
        if chart == "learning_hours_per_week":
            m = f.means["tmins"].mean()
            if m is None:
                continue
            with localcontext(DIVIDE):
                hours = m / 60
            data.append({"country": cnt, "hours": int(hours.quantize(Decimal(1), ROUND_HALF_UP))})
            raw[cnt] = {"hours": (hours, f.means["tmins"].slack(Decimal(0)) / 60)}
        elif chart == "escs":
            m = f.means["escs"].mean()
            if m is None:
                continue
            data.append({"id": cnt, "value": _round(m, 3)})
            raw[cnt] = {"value": (m, f.means["escs"].slack(Decimal("0.0001")))}
        else:
            x, y = f.means["durecec"].mean(), f.means["belong"].mean()
            if x is None or y is None:
                continue
            point = {"x": _round(x, 2), "y": _round(y, 3), "submissions": f.submissions}
            data.append({"id": cnt, "data": [point]})
            raw[cnt] = {"x": (x, Decimal(0)), "y": (y, Decimal(0))}
    return {"datasets": data}, raw


# -- what is served, with filters --------------------------------------------------------------
def served(url: str | None, sqlite_path: Path, filters: Iterable[str]) -> dict[str, dict]:
    from pisa_pulse.realtime.check import served_answers

    out = served_answers(url, sqlite_path)
    keys = [(chart, value) for chart in COUNTRY_CHARTS for value in filters]
    if url:
        for chart, value in keys:
            full = f"{url.rstrip('/')}/forage/{chart}?countries={quote(value, safe=',')}"
            with urllib.request.urlopen(full, timeout=10) as r:
                out[f"{chart}?countries={value}"] = json.load(r)
        return out
    from pisa_pulse.serving.forage_plugin import CHARTS as TABLES
    from pisa_pulse.serving.forage_plugin import answer
    from pisa_pulse.serving.reader import PublishedTables

    tables = PublishedTables(sqlite_path)
    try:
        tables.refresh()
        for chart, value in keys:
            rows = tables.rows(TABLES[chart])
            out[f"{chart}?countries={value}"] = answer(chart, rows, {"countries": [value]})
    finally:
        tables.close()
    return out


# -- comparing ---------------------------------------------------------------------------------
@dataclasses.dataclass
class Endpoint:
    equal: bool
    differences: list[dict]
    notes: list[str]


@dataclasses.dataclass
class IndependentResult:
    ok: bool
    source_count: int
    served_count: int | None
    seconds: float
    endpoints: dict[str, Endpoint]

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _diff(country, field, served_value, independent_value) -> dict:
    return {
        "country": country,
        "field": field,
        "served": served_value,
        "independent": independent_value,
    }


def compare_endpoint(key: str, got: dict | None, want: dict, raw: dict[str, dict]) -> Endpoint:
    if got is None:
        return Endpoint(False, [_diff(None, None, None, "not served")], [])
    diffs: list[dict] = []
    notes: list[str] = []
    if key == "submissions":
        if got.get("count") != want["count"]:
            diffs.append(_diff(None, "count", got.get("count"), want["count"]))
    elif key.startswith("submissions_over_time"):
        g = {p["x"]: p["y"] for p in got["datasets"][0]["data"]}
        w = {p["x"]: p["y"] for p in want["datasets"][0]["data"]}
        common = [x for x in w if x in g]  # both are "the last N buckets until now"
        if len(common) < max(1, len(w) - 2):
            diffs.append(_diff(None, "buckets in common", len(common), len(w)))
        diffs.extend(_diff(None, x, g[x], w[x]) for x in common if g[x] != w[x])
    else:
        g, w = _by_country(got), _by_country(want)
        for cnt in sorted(g.keys() | w.keys()):
            gs, ws = g.get(cnt), w.get(cnt)
            if gs is None or ws is None:
                diffs.append(_diff(cnt, "row", gs, ws))
                continue
            for field in sorted(gs.keys() | ws.keys()):
                a, b = gs.get(field), ws.get(field)
                if a == b and type(a) is type(b):
                    continue
                explained = _explained(field, a, b, raw.get(cnt, {}).get(field))
                if explained:
                    notes.append(f"{cnt} {field}: served {a}, independent {b}: {explained}")
                else:
                    diffs.append(_diff(cnt, field, a, b))
    return Endpoint(not diffs, diffs, notes)


def _by_country(answer: dict) -> dict[str, dict]:
    out = {}
    for item in answer.get("datasets", []):
        cnt = item.get("country", item.get("id"))
        fields = (
            dict(item["data"][0])
            if "data" in item
            else {k: v for k, v in item.items() if k not in ("country", "id")}
        )
        out[cnt] = fields
    return out


def _explained(field: str, served_value, mine, raw) -> str | None:
    """A one-unit difference in the last rounded digit is accepted only when the exact mean
    lies within the legitimate float slack of the rounding boundary between the two."""
    if raw is None or field not in CHART_DIGITS or not isinstance(served_value, (int, float)):
        return None
    digits = CHART_DIGITS[field]
    unit = Decimal(1).scaleb(-digits)
    exact, slack = raw
    if abs(Decimal(repr(served_value)) - Decimal(repr(mine))) != unit:
        return None
    boundary = (Decimal(repr(served_value)) + Decimal(repr(mine))) / 2
    # PostgreSQL's numeric division and float8 conversion: ~1e-15 relative.
    tolerance = slack + abs(exact) * Decimal("1e-14")
    if abs(exact - boundary) <= tolerance:
        return f"exact mean {exact:.12g} within {tolerance:.2g} of the rounding boundary {boundary}"
    return None


def default_filters(names: Iterable[str]) -> list[str]:
    """A two-country filter and a filter with an unknown code (when there are countries)."""
    names = sorted(names)
    if not names:
        return []
    pair = ",".join(names[:1] + names[-1:]) if len(names) > 1 else names[0]
    return [pair, f"{names[0].lower()},XXX"]


def check_independent(
    settings,
    *,
    url: str | None = None,
    sqlite_path: Path | None = None,
    wait: float = 30.0,
    filters: list[str] | None = None,
) -> IndependentResult:
    """Compare what is served with the independent recomputation (once the load has stopped)."""
    from pisa_pulse.realtime.check import served_answers, wait_for_count

    started = time.monotonic()
    sqlite_path = Path(sqlite_path or config.home() / "pulse.db")
    figures, minutes = compute(settings)
    total = sum(f.submissions for f in figures.values())
    served_count = wait_for_count(settings, total, lambda: served_answers(url, sqlite_path), wait)
    filters = default_filters(figures) if filters is None else filters
    got = served(url, sqlite_path, filters)
    want, raw = answers(figures, minutes, filters=filters)
    endpoints = {
        key: compare_endpoint(key, got.get(key), w, raw.get(key, {})) for key, w in want.items()
    }
    return IndependentResult(
        ok=all(e.equal for e in endpoints.values()),
        source_count=total,
        served_count=served_count,
        seconds=time.monotonic() - started,
        endpoints=endpoints,
    )


def cmd_check_independent(args, settings) -> int:
    """`pulse check --independent`: print per endpoint EQUAL or the differences."""
    url = args.url
    if url is None and not args.sqlite:
        url = config.read_state().get("datasette_url")
    result = check_independent(settings, url=url, sqlite_path=args.sqlite, wait=args.wait)
    if args.json:
        print(json.dumps(result.as_dict(), indent=2, default=str))
        return 0 if result.ok else 1
    verdict = "EQUAL to" if result.ok else "DIFFERENT from"
    print(
        f"pulse check --independent: served numbers are {verdict} an independent Python "
        f"recomputation over {result.source_count:,} source rows ({result.seconds:.1f} s)"
    )
    for key, e in result.endpoints.items():
        print(f"  {key}: {'EQUAL' if e.equal else 'NOT EQUAL'}")
        for d in e.differences[:20]:
            where = f"{d['country']} " if d["country"] else ""
            print(
                f"    - {where}{d['field']}: served {d['served']}, independent {d['independent']}"
            )
        if len(e.differences) > 20:
            print(f"    … {len(e.differences) - 20} more")
        for note in e.notes:
            print(f"    note: {note}")
    return 0 if result.ok else 1
