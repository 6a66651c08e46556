"""ISEI for ISCO-08 codes PISA 2018's map (as observed) lacks: the calibrated fallback of
int_isei_map / independent.isei_fallbacks, measured leave-one-code-out on the observed codes
against the value PISA 2018 published for them (docs/indices.md)."""

from decimal import Decimal

from pisa_pulse.realtime import independent


def _tables():
    params = independent.load_params(None)
    exact = {c: v for c, v in params.isei.items() if v[1] in ("observed", "learned")}
    return exact, params.ganzeboom


def leave_one_code_out() -> dict[str, list[float]]:
    """Per fallback choice, the error on each observed code when that code is held out."""
    exact, ganzeboom = _tables()
    errors: dict[str, list[float]] = {"calibrated": [], "ganzeboom": []}
    for code, (value, _rule) in exact.items():
        if code not in ganzeboom or code in ("9701", "9702", "9703"):
            continue
        held_out = {c: v for c, v in exact.items() if c != code}
        guess, _rule = independent.isei_fallbacks(held_out, ganzeboom)[code]
        errors["calibrated"].append(float(guess - value))
        errors["ganzeboom"].append(float(ganzeboom[code] - value))
    return errors


def test_every_ganzeboom_code_has_a_calibrated_value():
    params = independent.load_params(None)
    missing = [c for c in params.ganzeboom if c not in params.isei]
    assert not missing
    rules = {rule for _value, rule in params.isei.values()}
    assert {"observed", "sibling_same_isei08", "fit_2digit"} <= rules


def test_calibrated_fallback_beats_ganzeboom_leave_one_code_out():
    errors = leave_one_code_out()
    n = len(errors["calibrated"])
    assert n > 300
    mae = {k: sum(abs(e) for e in v) / n for k, v in errors.items()}
    exact = {k: sum(abs(e) <= 0.01 for e in v) / n for k, v in errors.items()}
    # Measured 2026-12-02: calibrated MAE 2.50, 13.0% within 0.01; Ganzeboom 6.32, 0%.
    assert mae["calibrated"] < 0.5 * mae["ganzeboom"]
    assert exact["calibrated"] > 0.10 > exact["ganzeboom"]


def test_issue_examples_closer_than_ganzeboom():
    # PISA 2018's published values for codes the observed map does not hold (issue 14).
    pisa = {"3359": "64.40", "2310": "85.41", "2636": "71.55", "8111": "35.07"}
    params = independent.load_params(None)
    for code, value in pisa.items():
        if params.isei[code][1] in ("observed", "learned"):
            continue
        served = params.isei[code][0]
        assert abs(served - Decimal(value)) < abs(params.ganzeboom[code] - Decimal(value)), code
