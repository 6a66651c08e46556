"""`/country/<CNT>` through the real Datasette app, over a file the real publisher wrote.

The expected numbers are read back from the published SQLite file with plain sqlite3 and
formatted by the page's documented rules (reals to 3 decimals, DURECEC 2, shares in % with
one decimal), never taken from the page's own code path.
"""

from __future__ import annotations

import html
import json
import random
import re
import sqlite3
import uuid

import psycopg2
import pytest

from pisa_pulse.serving.app import make_datasette
from pisa_pulse.serving.country_page import COUNTRIES_JSON
from pisa_pulse.serving.publisher import Publisher
from tests.support.databases import create_database
from tests.support.serving_marts import (
    COUNTRIES,
    Client,
    create_marts,
    execute,
    random_marts,
    write_marts,
)

HOSTILE = '<script>alert("x")</script>&'
REASONS = ("na", "missing_code", "out_of_range", "malformed")
INDICES = ("tmins", "durecec", "belong", "escs", "hisei", "pared", "paredint", "homepos")

ANALYST_DDL = """
create table marts.data_quality (country text, column_name text, reason text,
    values_nulled bigint, max_load_seq bigint);
create table marts.reconciliation (index_name text, country text, tolerance double precision,
    served_rule text, n_official bigint, n_computed bigint, n_compared bigint,
    n_official_only bigint, n_computed_only bigint, n_disagree bigint,
    mean_abs_diff double precision, max_abs_diff double precision,
    share_within_tolerance double precision, mean_diff double precision);
create table marts.country_profile (country text, submissions bigint,
    {cols}, official_share double precision);
""".format(
    cols=", ".join(
        f"{x}_mean double precision, {x}_n bigint, {x}_weighted boolean, "
        f"{x}_official_share double precision"
        for x in INDICES
    )
)


def _analyst_rows(rnd: random.Random, data) -> None:
    per_country = {r[0]: r[3] for r in data["forage_early_education_belonging"]}
    quality, recon, profile = [], [], []
    for c, n in per_country.items():
        for col in ("st001d01t", "st004d01t", "ec154q01ia"):
            for reason in rnd.sample(REASONS, 2):
                quality.append((c, col, reason, rnd.randint(1, 900), rnd.randint(1, 10**6)))
        for x in ("escs", "homepos"):
            recon.append((x, c, 0.01, "official when present", n, n, n - 1, 1, 0,
                          rnd.randint(0, 9), rnd.random() / 100, rnd.random() / 10,
                          rnd.random(), rnd.random() / 100 - 0.005))  # fmt: skip
        row = [c, n]
        for _ in INDICES:
            row += [rnd.uniform(-2, 40), rnd.randint(0, n), True, rnd.random()]
        profile.append((*row, rnd.random()))
    data["data_quality"] = quality
    data["reconciliation"] = recon
    data["country_profile"] = profile


@pytest.fixture(scope="module")
def world(pg_server, tmp_path_factory):
    url = create_database(pg_server, f"serving_cp_{uuid.uuid4().hex[:8]}")
    data = random_marts()
    create_marts(url, data)
    execute(url, ANALYST_DDL)
    rnd = random.Random()
    _analyst_rows(rnd, data)
    extra = {k: data[k] for k in ("data_quality", "reconciliation", "country_profile")}
    conn = psycopg2.connect(url)
    with conn, conn.cursor() as cur:
        write_marts(cur, extra)
        cur.execute("update marts.forage_escs set escs_provisional = (country = 'MEX')")
    conn.close()
    path = tmp_path_factory.mktemp("serving_cp") / "pulse.db"
    with Publisher(url, path) as pub:
        assert pub.publish_once()
    client = Client(make_datasette(path))
    yield path, client
    client.close()


def _sqlite_rows(path, sql, params=()):
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql, params)]
    finally:
        conn.close()


def _cell(page: str, key: str) -> str:
    m = re.search(rf'data-key="{key}">([^<]*)<', page)
    assert m, key
    return m.group(1)


@pytest.mark.parametrize("code", ["FRA", "MEX", "fra"])
def test_country_page_shows_the_published_numbers(world, code):
    path, client = world
    reply = client.request(f"/country/{code}")
    assert reply.status == 200, reply.body[:500]
    assert reply.headers["content-type"].startswith("text/html")
    page = reply.body.decode()
    cnt = code.upper()
    names = json.loads(COUNTRIES_JSON.read_text())
    assert html.escape(names[cnt]) in page

    (hours,) = _sqlite_rows(path, "select * from forage_learning_hours where country = ?", (cnt,))
    (escs,) = _sqlite_rows(path, "select * from forage_escs where country = ?", (cnt,))
    (early,) = _sqlite_rows(
        path, "select * from forage_early_education_belonging where country = ?", (cnt,)
    )
    (profile,) = _sqlite_rows(path, "select * from country_profile where country = ?", (cnt,))
    assert _cell(page, "submissions") == str(profile["submissions"])
    assert _cell(page, "hours") == str(hours["hours"])
    assert _cell(page, "tmins_mean") == f"{hours['tmins_mean']:.1f}"
    assert _cell(page, "escs") == f"{escs['value']:.3f}"
    assert _cell(page, "durecec") == f"{early['durecec_mean']:.2f}"
    assert _cell(page, "belong") == f"{early['belong_mean']:.3f}"

    # Every index of the profile: mean, n, official share.
    for x in INDICES:
        m = re.search(rf'<tr data-index="{x}">(.*?)</tr>', page, re.S)
        assert m, x
        cells = re.findall(r'<td class="num">([^<]*)</td>', m.group(1))
        want_share = f"{100 * profile[f'{x}_official_share']:.1f} %"
        assert cells == [f"{profile[f'{x}_mean']:.3f}", str(profile[f"{x}_n"]), want_share]

    # Calibration state from forage_escs.escs_provisional.
    provisional = re.search(r'id="calibration" data-provisional="(\d)"', page).group(1)
    assert int(provisional) == escs["escs_provisional"] == (1 if cnt == "MEX" else 0)
    assert ("Provisional" in page) == (cnt == "MEX")

    # Data quality: the total and each reason's sum.
    quality = _sqlite_rows(path, "select * from data_quality where country = ?", (cnt,))
    total = sum(r["values_nulled"] for r in quality)
    assert re.search(r'id="quality-total">(\d+)<', page).group(1) == str(total)
    for reason in {r["reason"] for r in quality}:
        want = sum(r["values_nulled"] for r in quality if r["reason"] == reason)
        got = re.search(rf'data-reason="{reason}"><th scope="row">[^<]*</th>'
                        r'<td class="num">(\d+)<', page).group(1)  # fmt: skip
        assert got == str(want)

    # Reconciliation rows for the country.
    for r in _sqlite_rows(path, "select * from reconciliation where country = ?", (cnt,)):
        m = re.search(rf'<tr data-index="{r["index_name"]}"><th scope="row">{r["index_name"]}'
                      r"</th>(.*?)</tr>", page, re.S)  # fmt: skip
        cells = re.findall(r'<td class="num">([^<]*)</td>', m.group(1))
        assert cells[0] == str(r["n_compared"])
        assert cells[1] == f"{100 * r['share_within_tolerance']:.1f} %"
        assert cells[3] == f"{r['mean_abs_diff']:.4f}"


def test_unknown_code_is_a_404_and_escaped(world):
    _, client = world
    for code in ("ZZZ", "FR", "F%3CA"):
        reply = client.request(f"/country/{code}")
        assert reply.status == 404, code
    reply = client.request('/country/<b>"x')
    assert reply.status == 404
    page = reply.body.decode()
    assert '<b>"x' not in page
    assert "&lt;b&gt;" in page


def test_page_escapes_published_text(world, tmp_path):
    """A published text value with markup is shown as text, never as markup."""
    path, _ = world
    copy = tmp_path / "pulse.db"
    src = sqlite3.connect(path)
    dst = sqlite3.connect(copy)
    src.backup(dst)
    src.close()
    dst.execute("update data_quality set column_name = ? where country = 'FRA'", (HOSTILE,))
    # A mart published later, with a `country` column, shows without a change to the page.
    dst.execute("create table country_extra (country text, widgets real)")
    dst.execute("insert into country_extra values ('FRA', 2.5), ('ITA', 9.0)")
    dst.commit()
    dst.close()
    client = Client(make_datasette(copy))
    try:
        page = client.request("/country/FRA").body.decode()
    finally:
        client.close()
    assert HOSTILE not in page
    extra = re.search(r'<table data-table="country_extra">.*?</table>', page, re.S).group(0)
    assert "<td>FRA</td><td>2.500</td>" in extra and "ITA" not in extra
    assert html.escape(HOSTILE) in page or "&lt;script&gt;" in page


def test_country_index_links_every_country(world):
    _, client = world
    reply = client.request("/country/")
    assert reply.status == 200
    page = reply.body.decode()
    names = json.loads(COUNTRIES_JSON.read_text())
    for code in names:
        assert f'href="/country/{code}"' in page
    assert len(re.findall(r"no data published", page)) == len(names) - len(COUNTRIES)


def test_datasette_index_and_dashboard_link_the_country_pages(world):
    _, client = world
    assert 'href="/country/"' in client.request("/").body.decode()
    assert 'href="/country/"' in client.request("/dashboard").body.decode()
    js = client.request("/-/pulse/dashboard.js").body.decode()
    assert "/country/${encodeURIComponent(c)}" in js
