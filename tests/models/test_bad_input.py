"""Bad input never moves a served number: a corrupted cell weighs exactly like a missing one.

Two warehouses get the same real rows. In the first, one country's rows (ITA) carry absurd
values planted in every column the pipeline reads — raw answers, the official derived
indices, the weight, the country code the row reports — in odd spellings too (NaN,
Infinity, 1e5, 3,5, full-width digits, thousands separators, a 40-digit integer, values far
outside each variable's domain). In the second, the same cells hold 'NA'. Both are built
from nothing by dbt; every Forage mart, the state and the served endpoints (every chart,
with and without a `countries` filter) must read the same, digit for digit. The oracle is
the 'NA' world: it shares the models, but not the bad cells, so a value that slips past the
domains changes a figure and fails the test.

A third check: every served figure lies inside its index's possible range
(seeds/codebook_items.csv) after rows at the simulator's highest messiness.
"""

from __future__ import annotations

import csv
import datetime as dt
import random

import pytest

from pisa_pulse.loader.raw_fixture import REPO_ROOT, declared_columns, normalise, pool_rows
from pisa_pulse.serving.forage_plugin import answer
from pisa_pulse.sim.messiness import Messifier
from tests.support.marts_world import MartsWorld

CODEBOOK = REPO_ROOT / "seeds" / "codebook_items.csv"
CORRUPTED_COUNTRY = "ITA"
SHARE_PLANTED = 0.25  # of the country's cells in each column
FORAGE_MARTS = {
    "submissions": "marts.forage_submissions",
    "submissions_over_time": "marts.forage_submissions_over_time",
    "learning_hours_per_week": "marts.forage_learning_hours",
    "escs": "marts.forage_escs",
    "early_education_and_belonging": "marts.forage_early_education_belonging",
}
# Spellings no PISA value has: each must become NULL, never a number, never an error.
ODD_SPELLINGS = (
    "NaN",
    "nan",
    "Infinity",
    "-Infinity",
    "1e5",
    "2E-3",
    "3,5",
    "1,234",
    "1 234",
    "\uff13",  # full-width 3
    "\u0663",  # Arabic-Indic 3
    "1\u00a0000",  # no-break space as a thousands separator
    "9" * 40,  # larger than any integer type
    "1" * 1000,
    "0x1F",
    "--1",
    "1.2.3",
    "½",
)


def _codebook() -> dict[str, dict]:
    with CODEBOOK.open() as fh:
        return {r["column_name"]: r for r in csv.DictReader(fh)}


def absurd_value(item: dict | None, rng: random.Random) -> str:
    """A value outside the item's domain, or a spelling no number has."""
    if item is None or item["kind"] == "text":
        return rng.choice(["ZZZZ", "99999999", "\uff26\uff32\uff21", "1e5", "NaN"])
    choices = list(ODD_SPELLINGS)
    if item["valid_max"]:
        hi = float(item["valid_max"])
        choices += [f"{hi * 1000 + 1:g}", f"{hi + 1:g}", f"{hi + 0.5}"]
    if item["valid_min"]:
        lo = float(item["valid_min"])
        choices += [f"{lo - 1:g}", f"{lo - 1e6:g}", f"{lo - 0.001}"]
    choices += ["-1000000000", "123456789012345"]
    return rng.choice(choices)


def planted_rows() -> tuple[list[dict], list[dict], dict[str, int]]:
    """(corrupted rows, the same rows with 'NA' in those cells, cells planted per column)."""
    items = _codebook()
    rng = random.Random(11)
    corrupted, missing, planted = [], [], {}
    planted_long: set[str] = set()
    for i, row in enumerate(pool_rows()):
        # `_cnt` is the source database's country (the key); CNT the row's own report of it
        bad = {"_id": i + 1, "_cnt": row["CNT"], "CNT": row["CNT"]}
        good = dict(bad)
        for column, var in declared_columns():
            bad[var] = good[var] = normalise(row.get(var))
            if row["CNT"] == CORRUPTED_COUNTRY and rng.random() < SHARE_PLANTED:
                bad[var] = absurd_value(items.get(var.lower()), rng)
                good[var] = "NA"
                planted[column] = planted.get(column, 0) + 1
        if row["CNT"] == CORRUPTED_COUNTRY and "W_FSTUWT" not in planted_long:
            # a cast of this would raise: numeric's limit is 131,072 digits before the point
            bad["W_FSTUWT"], good["W_FSTUWT"] = "1" * 140_000, "NA"
            planted_long.add("W_FSTUWT")
        corrupted.append(bad)
        missing.append(good)
    return corrupted, missing, planted


def _build(world: MartsWorld, rows: list[dict], base: dt.datetime | None = None) -> None:
    world.insert(rows, verbatim=True)
    if base is not None:  # the same submission times in both worlds, to the second
        world.execute(
            "update raw.responses set created_at = %s::timestamptz"
            " - make_interval(mins => ((id * 7919) %% 1500)::int, secs => (id %% 60)::int)",
            (base,),
        )
    for args in (("seed",), ("run",)):
        result = world.dbt(*args)
        assert result.returncode == 0, result.stdout[-3000:]


@pytest.fixture(scope="module")
def worlds(pg_server, tmp_path_factory):
    corrupted_rows, missing_rows, _ = planted_rows()
    corrupted = MartsWorld.create(pg_server, tmp_path_factory.mktemp("bad_input"), "badin")
    missing = MartsWorld.create(pg_server, tmp_path_factory.mktemp("na_input"), "nain")
    base = dt.datetime.now(dt.UTC).replace(microsecond=0)
    _build(corrupted, corrupted_rows, base)
    _build(missing, missing_rows, base)
    return corrupted, missing


def test_every_declared_column_is_planted():
    _, _, planted = planted_rows()
    assert set(planted) == {c for c, _ in declared_columns()}
    assert min(planted.values()) > 100  # of ITA's 593 rows


def test_corrupted_cells_weigh_exactly_like_missing_ones(worlds):
    corrupted, missing = worlds
    for relation in [*FORAGE_MARTS.values(), "marts.country_index_state"]:
        assert corrupted.texts(relation) == missing.texts(relation), relation
    # and the planted country is served at all
    assert missing.query("select 1 from marts.forage_escs where country = %s", ("ITA",))


@pytest.mark.parametrize("chart", list(FORAGE_MARTS))
@pytest.mark.parametrize("countries", [None, "ITA", "FRA,ITA", "ITA,MEX,XXX"])
def test_every_endpoint_and_filter_serves_the_same(worlds, chart, countries):
    params = (
        {} if countries is None or chart.startswith("submissions") else {"countries": [countries]}
    )
    answers = [
        answer(chart, w.query(f"select * from {FORAGE_MARTS[chart]}"), params) for w in worlds
    ]
    assert answers[0] == answers[1]
    assert answers[0] != answer(chart, [], params) or chart == "submissions_over_time"


def test_every_bad_cell_is_counted_with_a_reason(worlds):
    corrupted, missing = worlds
    sql = (
        "select column_name, reason, sum(values_nulled)::bigint as n from marts.data_quality"
        " where country = %s group by column_name, reason"
    )
    bad = {(r["column_name"], r["reason"]): r["n"] for r in corrupted.query(sql, ("ITA",))}
    na = {(r["column_name"], r["reason"]): r["n"] for r in missing.query(sql, ("ITA",))}
    for column, _ in declared_columns():
        if column == "cnt_reported":
            continue  # counted under its codebook name below
        nulled_bad = sum(n for (c, _), n in bad.items() if c == column)
        nulled_na = sum(n for (c, _), n in na.items() if c == column)
        assert nulled_bad == nulled_na, column  # each planted cell nulled in both worlds
    reasons = {reason for _, reason in bad}
    assert {"malformed", "out_of_range"} <= reasons


def _domain(items: dict, name: str) -> tuple[float, float]:
    item = items[name]
    return float(item["valid_min"]), float(item["valid_max"])


@pytest.fixture(scope="module")
def messy_world(pg_server, tmp_path_factory):
    """Real rows through the simulator's Messifier: every cell messed (its highest
    messiness, 1.0), then copies at 0.3 and 0.05 so that the means exist at all."""
    world = MartsWorld.create(pg_server, tmp_path_factory.mktemp("messy_max"), "messy")
    columns = Messifier().columns
    rows = []
    for copy, rate in enumerate((1.0, 0.3, 0.05)):
        messifier = Messifier(rate=rate, rng=random.Random(5 + copy))
        for i, row in enumerate(pool_rows()):
            values = messifier.apply([normalise(row.get(c.name.upper())) for c in columns])
            out = {
                c.name.upper(): (None if v == "\\N" else v)
                for c, v in zip(columns, values, strict=True)
            }
            rows.append(dict(out, _id=copy * 10_000 + i + 1, _cnt=row["CNT"]))
    _build(world, rows)
    return world


def test_served_figures_lie_inside_their_domains_at_the_highest_messiness(messy_world):
    items = _codebook()
    tmins = _domain(items, "tmins")
    escs = _domain(items, "escs")
    belong = _domain(items, "belong")
    durecec = _domain(items, "durecec")
    hours = messy_world.query("select country, hours from marts.forage_learning_hours")
    assert hours
    for r in hours:
        assert r["hours"] is None or tmins[0] / 60 <= r["hours"] <= tmins[1] / 60, r
    for r in messy_world.query("select country, value from marts.forage_escs"):
        assert r["value"] is None or escs[0] <= r["value"] <= escs[1], r
    bubbles = messy_world.query("select * from marts.forage_early_education_belonging")
    assert bubbles
    for r in bubbles:
        assert r["durecec_mean"] is None or durecec[0] <= r["durecec_mean"] <= durecec[1], r
        assert r["belong_mean"] is None or belong[0] <= r["belong_mean"] <= belong[1], r
    state = messy_world.query("select * from marts.country_index_state")
    for r in state:
        for x in ("hisei", "homepos", "pared", "paredint"):
            lo, hi = _domain(items, x)
            if r[f"{x}_n"]:
                mean = (
                    r[f"{x}_sum_wx"] / r[f"{x}_sum_w"]
                    if r[f"{x}_sum_w"]
                    else r[f"{x}_sum_x"] / r[f"{x}_n"]
                )
                assert lo <= mean <= hi, (r["cnt"], x, mean)
    reasons = {r["reason"] for r in messy_world.query("select reason from marts.data_quality")}
    assert {"malformed", "out_of_range", "missing_code", "na", "blank", "sql_null"} <= reasons
