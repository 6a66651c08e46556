"""The ISEI-08 table behind BMMJ1/BFMJ2/HISEI (seed isco08_to_isei08_ganzeboom, Ganzeboom's
two-decimal isqoisei08 values) is the one PISA 2018 used: checked against the official values
the real rows carry, which share nothing with the table (docs/indices.md)."""

import csv
from decimal import Decimal

from pisa_pulse.core import config
from pisa_pulse.loader.raw_fixture import pool_rows
from pisa_pulse.realtime import independent

PSEUDO_CODES = {"9701": Decimal(17), "9702": Decimal(17), "9703": Decimal(17)}
NO_ISEI = {"9704", "9705", "9997", "9998", "9999"}


def _table() -> dict[str, Decimal]:
    path = config.REPO_ROOT / "seeds" / "isco08_to_isei08_ganzeboom.csv"
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    table = {r["isco08"]: Decimal(r["isei08"]) for r in rows}
    assert len(table) == len(rows), "one value per code"
    return table


def test_every_official_bmmj1_and_bfmj2_is_the_tables_value():
    """1,269 real students: every parent's code with an official ISEI gets exactly it."""
    table = {**_table(), **PSEUDO_CODES}
    compared, wrong, codes = 0, [], set()
    for row in pool_rows():
        for code_var, isei_var in (("OCOD1", "BMMJ1"), ("OCOD2", "BFMJ2")):
            code, official = row[code_var].strip(), row[isei_var].strip()
            if official in ("", "NA") or code in ("", "NA"):
                continue
            code = code.zfill(4)
            compared += 1
            codes.add(code)
            if table.get(code) != Decimal(official).quantize(Decimal("0.01")):
                wrong.append((code, official, table.get(code)))
    assert compared > 2000 and len(codes) > 300
    assert not wrong, wrong[:10]


def test_codes_without_an_isei_are_not_in_the_table():
    table = _table()
    assert not NO_ISEI & set(table)
    assert len(table) == 590 and all(len(c) == 4 and c.isdigit() for c in table)


def test_the_map_gives_every_table_code_an_exact_value():
    params = independent.load_params(None)
    table = _table()
    assert set(table) <= set(params.isei)
    rules = {params.isei[c][1] for c in table}
    assert rules <= {"observed", "learned", "isei08"}
    assert all(params.isei[c][0] == table[c] for c in table)


def test_issue_examples():
    # PISA 2018's values for codes the 2018 records of the pool do not carry (issue 14).
    pisa = {"3359": "64.40", "2310": "85.41", "2636": "71.55", "8111": "35.07"}
    params = independent.load_params(None)
    for code, value in pisa.items():
        assert params.isei[code][0] == Decimal(value), code
