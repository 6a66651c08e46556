"""The real PISA 2018 rows through dbt: rebuilt indices against the OECD's official values.

The rows are loaded by loader/raw_fixture.py (not the loader). Italy's and Mexico's rows
arrive without their official BELONG, so BELONG is computed from the international lookup
and compared with the official values of the CSV. A copy of France's rows under another
country code ('ALB'), half of them without official values, checks what `pulse params learn`
learns from rows that carry official values (the world learns from its own rows first).
"""

from __future__ import annotations

import uuid
from collections import Counter

import psycopg2
import pytest

from pisa_pulse.loader.raw_fixture import create_raw_schema, insert_pool_rows, pool_rows
from tests.support.databases import create_database
from tests.support.dbt_indices_world import make_world

LEARN_OFFSET = 100_000  # ids of the 'ALB' copies
LEARN_DROPPED = ("pared", "belong", "bmmj1", "bfmj2", "hisei", "escs")


def _num(value: str) -> float | None:
    return float(value) if value not in ("", None) else None


@pytest.fixture(scope="module")
def world(pg_server, tmp_path_factory):
    url = create_database(pg_server, f"idx_{uuid.uuid4().hex[:8]}")
    w = make_world(url, tmp_path_factory.mktemp("dbt_indices"))
    rows = [dict(r, _id=i + 1) for i, r in enumerate(pool_rows())]
    conn = psycopg2.connect(url)
    create_raw_schema(conn)
    insert_pool_rows(conn, [r for r in rows if r["CNT"] == "FRA"])
    insert_pool_rows(conn, [r for r in rows if r["CNT"] != "FRA"], drop_official=("belong",))
    # 'ALB' copies: even positions keep official values (the learning half), odd drop them.
    copies = [dict(r, CNT="ALB", _id=LEARN_OFFSET + r["_id"]) for r in rows if r["CNT"] == "FRA"]
    insert_pool_rows(conn, copies[0::2])
    insert_pool_rows(conn, copies[1::2], drop_official=LEARN_DROPPED)
    conn.close()
    w.build(learn_from_rows=True)
    w.official = {r["_id"]: r for r in rows}  # type: ignore[attr-defined]
    return w


@pytest.fixture(scope="module")
def indices(world):
    return {
        r["id"]: r
        for r in world.query("select * from intermediate.int_student_indices order by id")
    }


def _real(indices):
    return [r for r in indices.values() if r["id"] < LEARN_OFFSET]


def test_one_row_per_student(world, indices):
    assert len(_real(indices)) == 1269
    assert sum(1 for r in indices.values() if r["cnt"] == "ALB") == 311


@pytest.mark.parametrize(
    "index",
    ["tmins", "lmins", "mmins", "smins", "durecec", "misced", "fisced", "hisced"]
    + ["misced_d", "fisced_d", "hisced_d", "paredint", "pared"],
)
def test_exact_indices_match_official_values_and_missingness(world, indices, index):
    mismatches = []
    compared = 0
    for r in _real(indices):
        official = _num(world.official[r["id"]][index.upper()])
        computed = None if r[f"{index}_computed"] is None else float(r[f"{index}_computed"])
        compared += official is not None
        if official != computed:
            mismatches.append((r["id"], official, computed))
    assert compared > 700
    assert mismatches == []


def _computed_wins(r: dict, index: str) -> bool:
    """docs/domains.md, "Official vs computed", written out again."""
    exact = ("observed", "learned", "isei08")
    if index in ("tmins", "durecec"):
        return r[f"{index}_computed"] is not None
    if index in ("pared", "paredint"):
        suffix = "_d" if index == "paredint" else ""
        parents = (r[f"misced{suffix}_computed"], r[f"fisced{suffix}_computed"])
        return r[f"{index}_computed"] is not None and None not in parents
    if index == "hisei":
        return r["bmmj1_rule"] in exact and r["bfmj2_rule"] in exact
    return False


def test_the_served_value_follows_the_official_vs_computed_rule(indices):
    wins = Counter()
    for r in indices.values():
        for index in ("tmins", "pared", "paredint", "durecec", "hisei", "belong", "escs"):
            official, computed = r[f"{index}_official"], r[f"{index}_computed"]
            if _computed_wins(r, index):
                wins[index] += 1
                assert (r[index], r[f"{index}_source"]) == (computed, "computed"), index
            else:
                assert r[index] == (official if official is not None else computed)
                expected = "official" if official is not None else "computed"
                if computed is not None or official is not None:
                    assert r[f"{index}_source"] == expected, index
    assert wins["tmins"] > 0 and wins["hisei"] > 0 and not wins["escs"]


def test_hisei_exact_for_mapped_codes(world, indices):
    compared = 0
    for r in _real(indices):
        row = world.official[r["id"]]
        for index, rule in (("bmmj1", "bmmj1_rule"), ("bfmj2", "bfmj2_rule")):
            official = _num(row[index.upper()])
            if r[rule] in ("observed", "learned", "isei08") and official is not None:
                compared += 1
                assert float(r[f"{index}_computed"]) == pytest.approx(official, abs=1e-9)
        official = _num(row["HISEI"])
        fallback = {r["bmmj1_rule"], r["bfmj2_rule"]} & {"group_3digit", "group_2digit"}
        if official is not None and not fallback:
            assert float(r["hisei_computed"]) == pytest.approx(official, abs=1e-9)
    assert compared > 2000


def test_belong_within_0002_for_countries_on_international_parameters(world, indices):
    by_country: dict[str, list[float]] = {"ITA": [], "MEX": []}
    for r in _real(indices):
        official = _num(world.official[r["id"]]["BELONG"])
        if r["cnt"] in by_country and official is not None:
            assert r["belong_official"] is None  # dropped on load: computed, not copied
            assert r["belong_rule"] == "international"
            computed = r["belong_computed"]
            diff = 9.0 if computed is None else abs(float(computed) - official)
            by_country[r["cnt"]].append(diff)
    for cnt, diffs in by_country.items():
        share = sum(d <= 0.002 for d in diffs) / len(diffs)
        assert len(diffs) > 250 and share >= 0.99, (cnt, share)


def test_escs_within_001_for_students_with_all_three_components(world, indices):
    within, total = 0, 0
    for r in _real(indices):
        official = _num(world.official[r["id"]]["ESCS"])
        if official is None or r["escs_imputed_component"] is not None:
            continue
        if r["escs_computed"] is None:
            continue
        total += 1
        within += abs(float(r["escs_computed"]) - official) <= 0.01
    assert total > 1100 and within / total >= 0.95


def test_escs_from_computed_components_alone(world):
    """ESCS rebuilt only from computed HISEI, PAREDINT and HOMEPOS (no official inputs)."""
    rows = world.query(
        """
        with c as (
            select
                max(coef) filter (where term = 'intercept') as b0,
                max(coef) filter (where term = 'HISEI') as b1,
                max(coef) filter (where term = 'PAREDINT') as b2,
                max(coef) filter (where term = 'HOMEPOS') as b3
            from reference.escs_2018_coefficients
        )
        select count(*) as n,
               count(*) filter (where abs(
                   c.b0 + c.b1 * i.hisei_computed + c.b2 * i.paredint_computed
                   + c.b3 * i.homepos_computed - i.escs_official) <= 0.01) as within
        from intermediate.int_student_indices as i cross join c
        where i.id < %s and i.escs_official is not null and i.hisei_computed is not null
          and i.paredint_computed is not null and i.homepos_computed is not null
        """,
        (LEARN_OFFSET,),
    )[0]
    assert rows["n"] > 1000
    assert rows["within"] / rows["n"] >= 0.95


def test_escs_imputed_when_exactly_one_component_is_missing(indices):
    imputed = [r for r in _real(indices) if r["escs_imputed_component"] is not None]
    assert imputed, "the real rows include students with one missing component"
    for r in imputed:
        assert r["escs_computed"] is not None
        missing = [c for c in ("hisei", "paredint", "homepos") if r[c] is None]
        assert missing == [r["escs_imputed_component"]]
    # With two or more components missing there is no ESCS.
    for r in _real(indices):
        if sum(r[c] is None for c in ("hisei", "paredint", "homepos")) >= 2:
            assert r["escs_computed"] is None


def test_pared_learned_from_rows_carrying_official_values(world, indices):
    learned = world.query("select * from intermediate.int_pared_years where cnt = 'ALB'")
    assert learned and {r["pared_rule"] for r in learned} == {"learned"}
    checked = 0
    for r in indices.values():
        if r["cnt"] != "ALB" or r["pared_official"] is not None:
            continue
        official = _num(world.official[r["id"] - LEARN_OFFSET]["PARED"])
        if official is None:
            continue
        if r["pared_computed"] is not None:
            checked += 1
            assert r["pared_rule"] == "learned"
            assert float(r["pared_computed"]) == official
    assert checked > 120


def test_belong_country_pattern_learned_from_official_values(world, indices):
    """France has its own Q03 parameters: only learned patterns reproduce its BELONG."""
    checked = exact = 0
    for r in indices.values():
        if r["cnt"] != "ALB" or r["belong_rule"] != "country_learned" or r["belong_official"]:
            continue
        source = world.official[r["id"] - LEARN_OFFSET]
        if source["CNT"] != "FRA" or _num(source["BELONG"]) is None:
            continue
        checked += 1
        exact += abs(float(r["belong_computed"]) - _num(source["BELONG"])) <= 0.002
    assert checked > 30
    assert exact == checked


def test_tombstones_remove_rows_on_the_next_incremental_run(world):
    conn = psycopg2.connect(world.url)
    with conn.cursor() as cur:
        cur.execute("delete from raw.responses where cnt = 'ALB' and id = %s", (LEARN_OFFSET + 1,))
        cur.execute(
            "insert into raw.responses_deleted (cnt, id) values ('ALB', %s)", (LEARN_OFFSET + 1,)
        )
    conn.commit()
    conn.close()
    world.dbt("run", "--select", "int_student_indices")
    left = world.query(
        "select count(*) as n from intermediate.int_student_indices where cnt = 'ALB' and id = %s",
        (LEARN_OFFSET + 1,),
    )
    assert left[0]["n"] == 0


def test_isei_map_matches_independent(world):
    """int_isei_map (SQL) equals the independent checker's map (Python, the same seeds): one
    exact value for every code of the ISEI-08 table and the 2018 observed map."""
    from decimal import Decimal

    from pisa_pulse.realtime import independent

    rows = world.query("select isco08, isei, isei_rule from intermediate.int_isei_map")
    served = {r["isco08"]: Decimal(r["isei"]) for r in rows}
    assert {r["isei_rule"] for r in rows} <= {"observed", "learned", "isei08"}
    # values, not rules: this world may have learned codes from its own rows (equal values)
    expected = {c: value for c, (value, _rule) in independent.load_params(None).isei.items()}
    assert len(served) == len(rows) and len(served) >= 593
    wrong = {c: (served.get(c), expected[c]) for c in expected if served.get(c) != expected[c]}
    assert not wrong and set(served) == set(expected)
