"""`pulse check --independent`: the Python oracle agrees with what the pipeline serves, equals
hand-computed figures, and notices a tampered served figure.

One world for the module: six application databases (real PISA rows with messiness 0.05 for
FRA/ITA/MEX/ESP/DEU, official indices stripped from a third of them so the computed values
are served; five hand-made rows for GBR), a HOMEPOS calibration in force for ESP, and the
pipeline's from-scratch build (check.recompute: loader → dbt seed + run → publisher) giving
the published SQLite file that is compared.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
from decimal import Decimal

import psycopg2
import pytest

from pisa_pulse.core import config
from pisa_pulse.core.config import REPO_ROOT
from pisa_pulse.realtime import independent as ind
from tests.support.databases import create_database

SIMULATED = ["fra", "ita", "mex", "esp", "deu"]
COUNTRIES = [*SIMULATED, "gbr"]

# GBR, by hand: (id, W_FSTUWT, ST060, ST061, ST059 ×3, ST125, ST126, ST034 ×6, official ESCS)
HAND_ROWS = [
    (1, "1.5", "30", "50", None, None, None, "3", "4", "2", "3", "3", "2", "3", "2", "0.5"),
    (2, "2.5", " 25 ", "45.0", "5", "5", "5", "2", "4", "1", "4", "4", "1", "4", "1", "-0.25"),
    (3, "1", "40", "60", None, None, None, "7", "1", "2", "NA", "", "9", None, None, "NA"),
    (4, "100", "30", "5e1", None, None, None, "3", "3,0", "2", "3", "3", None, "8", "", "NaN"),
    (5, "NA", "20", "50", None, None, None, "1", "2", "1", "1", "1", "1", "1", "1", "1.0"),
]
HAND_COLUMNS = (
    "id", "w_fstuwt", "st060q01na", "st061q01na", "st059q01ta", "st059q02ta", "st059q03ta",
    "st125q01na", "st126q01ta", "st034q01ta", "st034q02ta", "st034q03ta", "st034q04ta",
    "st034q05ta", "st034q06ta", "escs",
)  # fmt: skip


def _belong_lookup() -> dict[str, Decimal]:
    with open(REPO_ROOT / "seeds" / "belong_wle_lookup_international.csv", newline="") as fh:
        return {r["pattern_key"]: Decimal(r["belong_wle"]) for r in csv.DictReader(fh)}


def _execute(url: str, sql: str, params=None) -> None:
    conn = psycopg2.connect(url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql, params)
    finally:
        conn.close()


def _calibrate_esp(warehouse_url: str) -> None:
    """A calibration in force for ESP (no seed block): the DEFAULT block, shifted."""
    from pisa_pulse.indices.calibration_tables import ensure_calibration_tables

    with open(REPO_ROOT / "seeds" / "homepos_item_params.csv", newline="") as fh:
        default = [r for r in csv.DictReader(fh) if r["scope"] == "DEFAULT"]
    rows = []
    for r in default:
        bs = [float(r[f"b{k}"]) + 0.3 if r[f"b{k}"] else None for k in range(1, 6)]
        rows.append(("ESP", 1, "mml", r["item"], float(r["a"]) * 1.2, *bs, 500))
    ensure_calibration_tables(warehouse_url)  # before the first dbt run: by run-operation
    conn = psycopg2.connect(warehouse_url)
    try:
        with conn, conn.cursor() as cur:
            cur.executemany(
                "insert into calibration.homepos_params "
                "(cnt, version, method, item, a, b1, b2, b3, b4, b5, n_rows) "
                "values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                rows,
            )
    finally:
        conn.close()


@pytest.fixture(scope="module")
def world(pg_server, tmp_path_factory):
    from pisa_pulse.realtime.check import recompute
    from pisa_pulse.sim import api as sim

    tmp = tmp_path_factory.mktemp("check_independent")
    prefix = f"ci{uuid.uuid4().hex[:6]}"
    settings = config.Settings(
        home=tmp / "home",
        warehouse_url=create_database(pg_server, f"{prefix}_warehouse"),
        source_url_template=f"{pg_server}/{prefix}_{{country}}",
        sources=COUNTRIES,
    )
    sim.setup_databases(settings)
    try:
        sim.backfill(settings, 500, countries=SIMULATED, seed=5, messiness=0.05, even=True)
        for cnt in SIMULATED:
            url = settings.source_url(cnt)
            # served from the computed values: official cells gone in a third of the rows
            _execute(
                url,
                "update public.responses set homepos = 'NA', escs = 'na', belong = null, "
                "hisei = '', bmmj1 = ' NA ', tmins = 'NA', durecec = '99', paredint = null "
                "where id % 3 = 0",
            )
            _execute(
                url,
                "update public.responses set created_at = date_trunc('second', now()) "
                "- make_interval(mins => ((id * 7919) % 1500)::int, secs => (id % 60)::int)",
            )
        names = ", ".join(HAND_COLUMNS)
        marks = ", ".join(["%s"] * len(HAND_COLUMNS))
        conn = psycopg2.connect(settings.source_url("gbr"))
        with conn, conn.cursor() as cur:
            cur.executemany(f"insert into public.responses ({names}) values ({marks})", HAND_ROWS)
        conn.close()
        _calibrate_esp(settings.warehouse_url)
        total = sum(ind.compute(settings)[0][c.upper()].submissions for c in COUNTRIES)
        sqlite_path = recompute(settings, tmp, total)
        yield settings, sqlite_path, tmp
    finally:
        sim.drop_databases(settings, COUNTRIES)


def _report(result: ind.IndependentResult) -> str:
    return "\n".join(
        f"{key}: {e.differences[:5]} {e.notes}"
        for key, e in result.endpoints.items()
        if not e.equal or e.notes
    )


def test_messy_rows_independent_check_is_equal_for_every_endpoint(world):
    settings, sqlite_path, _ = world
    result = ind.check_independent(settings, sqlite_path=sqlite_path, wait=0)
    assert result.ok, _report(result)
    assert result.source_count == 505 == result.served_count
    keys = set(result.endpoints)
    assert {"submissions", "submissions_over_time", "submissions_over_time:minute"} <= keys
    for chart in ind.COUNTRY_CHARTS:
        assert chart in keys
        assert f"{chart}?countries=DEU,MEX" in keys  # a two-country filter
        assert f"{chart}?countries=deu,XXX" in keys  # lower case and an unknown code
    # every country is in the comparison, and HOMEPOS used each kind of block
    params = ind.load_params(settings.warehouse_url)
    assert params.homepos("ESP")[0] == "calibration"
    assert params.homepos("FRA")[0] == "country_seed"
    assert params.homepos("DEU")[0] == "default"
    served = ind.served(None, sqlite_path, [])
    assert {d["id"] for d in served["escs"]["datasets"]} == {c.upper() for c in COUNTRIES}


def test_hand_computed_figures_equal_the_oracle(world):
    settings, sqlite_path, _ = world
    figures, _ = ind.compute(settings)
    answers, _ = ind.answers(figures, {}, filters=["GBR,FRA"])
    belong = _belong_lookup()

    # TMINS: rows 1-3 weighted (row 4's ST061 '5e1' is malformed, row 5 has no weight):
    # (1.5·1500 + 2.5·1125 + 1·2400) / 5 = 1492.5 minutes = 24.875 h → 25 (plain mean: 28)
    gbr = figures["GBR"]
    assert gbr.submissions == 5
    assert gbr.means["tmins"].mean() == Decimal("1492.5")
    hours = {d["country"]: d["hours"] for d in answers["learning_hours_per_week"]["datasets"]}
    assert hours["GBR"] == 25
    # DURECEC: rows 1 (4+2-3 = 3) and 2 (4+2-2 = 4): (1.5·3 + 2.5·4) / 4 = 3.625; the plugin's
    # round() on the double 3.625 (a binary tie) gives 3.62
    assert gbr.means["durecec"].mean() == Decimal("3.625")
    # BELONG: rows 1 ('111111'), 2 ('000000'), 4 ('111999', three items); row 3 has one item
    want_belong = (
        Decimal("1.5") * belong["111111"]
        + Decimal("2.5") * belong["000000"]
        + Decimal(100) * belong["111999"]
    ) / Decimal(104)
    assert abs(gbr.means["belong"].mean() - want_belong) < Decimal("1e-20")
    bubble = next(
        d for d in answers["early_education_and_belonging"]["datasets"] if d["id"] == "GBR"
    )
    assert bubble["data"] == [{"x": 3.62, "y": round(float(want_belong), 3), "submissions": 5}]
    # ESCS: official 0.5 (w 1.5) and -0.25 (w 2.5); 'NA', 'NaN' and the unweighted row drop out
    assert gbr.means["escs"].mean() == Decimal("0.03125")
    assert {"id": "GBR", "value": 0.031} in answers["escs"]["datasets"]
    # the filter keeps exactly the countries asked for, sorted
    filtered = answers["escs?countries=GBR,FRA"]["datasets"]
    assert [d["id"] for d in filtered] == ["FRA", "GBR"]
    # and the pipeline serves the same for GBR
    served = ind.served(None, sqlite_path, ["GBR"])
    assert served["learning_hours_per_week?countries=GBR"]["datasets"] == [
        {"country": "GBR", "hours": 25}
    ]


def test_cleaning_follows_the_documented_spellings():
    domains = ind.read_domains()
    st061, ocod = domains["st061q01na"], domains["ocod1"]
    good = {" 45 ": 45, "45.0": 45, "+45": 45, "45.": 45, "\t45\r\n": 45}
    for raw, value in good.items():
        assert ind.clean(raw, st061) == value, raw
    for raw in (
        "NA",
        "na",
        "",
        "  ",
        None,
        "4e1",
        "45,0",
        "４５",
        "NaN",
        "45.5",
        "999",
        "9",
        "121",
    ):
        assert ind.clean(raw, st061) is None, raw
    assert ind.clean("1" * 16, domains["w_fstuwt"]) is None  # longer than 15 digits
    assert ind.clean("110.0", ocod) == "0110"
    assert ind.clean("12345", ocod) is None  # never cut to a valid-looking '1234'
    assert ind.clean("9999", ocod) is None  # missing code


def _tampered(sqlite_path, tmp, sql: str):
    path = tmp / f"tampered_{uuid.uuid4().hex[:6]}.db"
    shutil.copy(sqlite_path, path)
    db = sqlite3.connect(path)
    db.execute(sql)
    db.commit()
    db.close()
    return path


def test_a_tampered_served_figure_is_reported_not_equal(world):
    settings, sqlite_path, tmp = world
    path = _tampered(
        sqlite_path, tmp, "update forage_escs set value = value + 0.01 where country = 'ITA'"
    )
    result = ind.check_independent(settings, sqlite_path=path, wait=0)
    assert not result.ok
    wrong = {key for key, e in result.endpoints.items() if not e.equal}
    assert wrong == {"escs"}  # the filters name DEU and MEX, not ITA
    (diff,) = result.endpoints["escs"].differences
    assert diff["country"] == "ITA" and diff["field"] == "value"
    assert diff["served"] == pytest.approx(diff["independent"] + 0.01, abs=0.0011)

    path = _tampered(
        sqlite_path,
        tmp,
        "update forage_early_education_belonging set durecec_mean = durecec_mean + 0.01 "
        "where country = 'MEX'",
    )
    result = ind.check_independent(settings, sqlite_path=path, wait=0)
    wrong = {key for key, e in result.endpoints.items() if not e.equal}
    assert wrong == {
        "early_education_and_belonging",
        "early_education_and_belonging?countries=DEU,MEX",
    }


def test_cli_flag_exit_status(world):
    settings, sqlite_path, tmp = world
    env = {
        **os.environ,
        "PULSE_HOME": str(settings.home),
        "PULSE_WAREHOUSE_URL": settings.warehouse_url,
        "PULSE_SOURCE_URL_TEMPLATE": settings.source_url_template,
        "PULSE_SOURCES": ",".join(COUNTRIES),
    }
    argv = [sys.executable, "-m", "pisa_pulse.cli", "check", "--independent", "--wait", "0"]
    ok = subprocess.run([*argv, "--sqlite", str(sqlite_path)], env=env, capture_output=True)
    assert ok.returncode == 0, ok.stdout.decode() + ok.stderr.decode()
    assert b"learning_hours_per_week: EQUAL" in ok.stdout
    path = _tampered(sqlite_path, tmp, "update forage_submissions set count = count + 1")
    bad = subprocess.run([*argv, "--sqlite", str(path), "--json"], env=env, capture_output=True)
    assert bad.returncode == 1, bad.stdout.decode() + bad.stderr.decode()
    report = json.loads(bad.stdout)
    assert report["endpoints"]["submissions"]["equal"] is False
    assert report["endpoints"]["escs"]["equal"] is True
