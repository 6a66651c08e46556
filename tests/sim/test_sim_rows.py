"""Real rows round-trip; other countries get rewritten country fields; ids are unique."""

from __future__ import annotations

from collections import Counter

import pytest

from pisa_pulse.core import codebook
from pisa_pulse.sim import api, countries
from pisa_pulse.sim.pool import COUNTRY_DEPENDENT_INDICES
from tests.support.sim_world import csv_rows, fetch, fetch_dicts


@pytest.fixture
def sim_settings(pulse_env):
    """Settings whose application databases are private to the test; dropped afterwards."""
    yield pulse_env
    api.drop_databases(pulse_env)


def test_fra_rows_round_trip_exactly(sim_settings):
    api.setup_databases(sim_settings, ["FRA"])
    api.insert_rows(sim_settings, "FRA", 120, seed=11, messiness=0)
    expected = csv_rows("FRA")
    got = fetch_dicts(sim_settings, "FRA")
    assert len(got) == 120
    variables = codebook.variables()
    for row in got:
        want = expected[row["cntstuid"]]
        assert [row[v] for v in variables] == [want[v] for v in variables]
    # the normalisation really happened: integers without '.0', codes keep their zeros
    sample = got[0]
    assert sample["cntryid"] == "250" and sample["st011d17ta"].startswith("025")
    assert all(row["natcen"] == "025000" for row in got)
    assert not any(
        v == "" or (v and v.endswith(".0")) for r in got for v in r.values() if isinstance(v, str)
    )


def test_other_countries_get_their_own_country_fields(sim_settings):
    api.setup_databases(sim_settings, ["ALB", "ESP"])
    api.insert_rows(sim_settings, "ALB", 200, seed=12, messiness=0)
    rows = fetch_dicts(sim_settings, "ALB")
    iso = countries.iso_numeric()["ALB"]
    assert iso == 8
    assert {r["cnt"] for r in rows} == {"ALB"}
    assert {r["cntryid"] for r in rows} == {"8"}
    assert {r["oecd"] for r in rows} == {"0"}
    for item in ("st011d17ta", "st011d18ta", "st011d19ta"):
        values = {r[item] for r in rows}
        assert values <= {"0008001", "0008002", "9999999", "9999998", "9999997", "NA"}
        assert {"0008001", "0008002"} & values
    for name in COUNTRY_DEPENDENT_INDICES:
        assert {r[name] for r in rows} == {"NA"}, name
    for name in ("tmins", "belong", "hisei", "w_fstuwt"):  # other indices keep their values
        assert sum(r[name] != "NA" for r in rows) > 100, name
    # drawn from the whole pool: the three real countries' rows all appear
    languages = Counter(r["langtest_qqq"] for r in rows)
    assert {"493", "200", "156"} <= set(languages)  # French, Italian, Spanish test language
    api.insert_rows(sim_settings, "ESP", 5, seed=13, messiness=0)
    assert {r[0] for r in fetch(sim_settings, "ESP", "select oecd from public.responses")} == {"1"}


def test_ids_unique_across_countries_calls_and_restarts_in_random_order(sim_settings):
    api.setup_databases(sim_settings, ["FRA", "ITA", "MEX"])
    ids = []
    for i, cnt in enumerate(["FRA", "ITA", "MEX", "FRA"]):
        ids += api.insert_rows(sim_settings, cnt, 300, seed=20 + i)  # a new allocator each time
    assert len(ids) == len(set(ids)) == 1200
    first = ids[:300]
    assert first != sorted(first) and first != sorted(first, reverse=True)
    in_db = []
    for cnt in ("FRA", "ITA", "MEX"):
        in_db += [r[0] for r in fetch(sim_settings, cnt, "select id from public.responses")]
    assert sorted(in_db) == sorted(ids)


def test_backfill_spreads_by_sample_size(sim_settings):
    codes = ["FRA", "ESP", "ISL"]
    api.setup_databases(sim_settings, codes)
    seen = []
    n = api.backfill(
        sim_settings, 900, countries=codes, seed=3, progress=lambda d, t: seen.append(d)
    )
    assert n == 900
    counts = api.count_rows(sim_settings, codes)
    assert sum(counts.values()) == 900
    assert counts == countries.split(900, codes)
    assert counts["ESP"] > counts["FRA"] > counts["ISL"] > 0  # 35,943 / 6,308 / 3,296 students
    assert seen[-1] == 900
    api.empty(sim_settings)
    assert api.count_rows(sim_settings, codes) == {c: 0 for c in codes}
