"""seeds/codebook_items.csv is what pisa_pulse.indices.codebook_seed generates from the codebook."""

from __future__ import annotations

import csv

from pisa_pulse.indices import codebook_seed


def test_committed_seed_matches_the_generator(tmp_path):
    fresh = tmp_path / "codebook_items.csv"
    assert codebook_seed.write(fresh) == 1118
    assert fresh.read_text() == codebook_seed.SEED_PATH.read_text()


def test_item_domains_follow_the_missing_value_rules():
    with codebook_seed.SEED_PATH.open() as fh:
        items = {r["pisa_variable"]: r for r in csv.DictReader(fh)}
    # ST061 = 95 minutes is a real answer: its codes are the 3-digit ones.
    assert items["ST061Q01NA"]["missing_codes"] == "995|997|998|999"
    assert (items["ST061Q01NA"]["valid_min"], items["ST061Q01NA"]["valid_max"]) == ("10", "120")
    assert (items["ST059Q01TA"]["valid_min"], items["ST059Q01TA"]["valid_max"]) == ("0", "40")
    assert items["ST034Q01TA"]["missing_codes"] == "5|7|8|9"
    assert (items["ST034Q01TA"]["valid_min"], items["ST034Q01TA"]["valid_max"]) == ("1", "4")
    assert items["TMINS"]["missing_codes"] == "99999995|99999997|99999998|99999999"
    assert items["OCOD1"]["kind"] == "text"
    assert items["OCOD1"]["missing_codes"] == "9997|9998|9999"
    assert "9701" in items["OCOD1"]["valid_codes"].split("|")
    assert items["W_FSTUWT"]["missing_codes"] == ""
    assert items["BELONG"]["kind"] == "numeric" and items["BELONG"]["width"] == "2"
