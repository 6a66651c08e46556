"""The live dashboard in a real headless Chromium: the five charts render and follow the data."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from conftest import create_database
from pulse.cluster import free_port
from serving.publisher import Publisher
from serving_marts import create_marts, execute, random_marts

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium"),
]


@pytest.fixture(scope="module")
def site(pg_server, tmp_path_factory):
    url = create_database(pg_server, f"serving_ui_{uuid.uuid4().hex[:8]}")
    data = random_marts()
    create_marts(url, data)
    home = tmp_path_factory.mktemp("dashboard")
    path = home / "pulse.db"
    publisher = Publisher(url, path)
    publisher.publish_once()
    port = free_port()
    log = open(home / "serve.log", "wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "serving.cli", "serve", "--sqlite", str(path), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(base + "/forage/submissions", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, (home / "serve.log").read_text()
            assert time.monotonic() < deadline, "Datasette did not start"
            time.sleep(0.2)
        yield base, url, data, publisher, home
    finally:
        server.terminate()
        server.wait(10)
        log.close()
        publisher.close()


@pytest.fixture(scope="module")
def page(site):
    from playwright.sync_api import sync_playwright

    base = site[0]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1500})
        outside = []

        # Everything must come from our server: no CDN, no fonts, nothing else.
        def guard(route):
            if route.request.url.startswith(base):
                route.continue_()
            else:
                outside.append(route.request.url)
                route.abort()

        page.route("**/*", guard)
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(base + "/dashboard")
        page.outside_requests = outside
        page.js_errors = errors
        yield page
        browser.close()


def count_shown(page) -> int:
    return int(page.get_attribute("#submissions-count", "data-count") or -1)


def test_the_five_charts_render(site, page, tmp_path_factory):
    _, _, data, _, home = site
    expected = data["forage_submissions"][0][0]
    page.wait_for_selector(f'#submissions-count[data-count="{expected}"]', timeout=10_000)
    assert page.inner_text("#submissions-count").replace(",", "") == str(expected)

    with_hours = [r for r in data["forage_learning_hours"] if r[1] is not None]
    page.wait_for_function(
        f"document.querySelectorAll('#chart-bars rect').length === {len(with_hours)}",
        timeout=10_000,
    )
    hourly = [r for r in data["forage_submissions_over_time"] if r[0] == "hour"]
    assert page.locator("#chart-line circle").count() == len(hourly)
    assert page.locator("#chart-line path").count() >= 1
    # The choropleth: world features drawn, published countries coloured, others grey.
    page.wait_for_function("document.querySelectorAll('#chart-map path[data-id]').length > 150")
    with_escs = [r[0] for r in data["forage_escs"] if r[1] is not None]
    for country in with_escs:
        fill = page.get_attribute(f'#chart-map path[data-id="{country}"]', "fill")
        assert fill and fill != "#e3e3e3", country
    assert page.get_attribute('#chart-map path[data-id="BRA"]', "fill") == "#e3e3e3"
    with_bubbles = [r for r in data["forage_early_education_belonging"] if r[1] is not None]
    assert page.locator("#chart-bubbles circle").count() == len(with_bubbles)

    shot = home / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    assert_not_blank(shot)
    assert page.outside_requests == []
    assert page.js_errors == []


def test_the_dashboard_follows_new_publications(site, page):
    _, url, data, publisher, home = site
    page.wait_for_selector("#chart-bars rect", timeout=10_000)
    before = count_shown(page)
    execute(url, "update marts.forage_submissions set count = count + 12345")
    execute(url, "update marts.forage_escs set value = -value")
    assert publisher.publish_once()
    started = time.monotonic()
    page.wait_for_selector(f'#submissions-count[data-count="{before + 12345}"]', timeout=3_000)
    assert time.monotonic() - started < 3
    page.screenshot(path=str(home / "dashboard-updated.png"), full_page=True)
    assert_not_blank(home / "dashboard-updated.png")


def test_the_country_selector_filters_the_country_charts(site, page):
    page.wait_for_selector("#countries option[value=FRA]", timeout=10_000)
    page.select_option("#countries", ["FRA", "MEX"])
    page.wait_for_function(
        "document.querySelectorAll('#chart-bars rect').length === 2", timeout=3_000
    )
    page.wait_for_function(
        "document.querySelectorAll('#chart-bubbles circle').length === 2", timeout=3_000
    )
    assert page.get_attribute('#chart-map path[data-id="ITA"]', "fill") == "#e3e3e3"
    page.click("#clear-countries")
    page.wait_for_function(
        "document.querySelectorAll('#chart-bars rect').length > 2", timeout=3_000
    )


def assert_not_blank(path: Path) -> None:
    from PIL import Image, ImageStat

    image = Image.open(path).convert("RGB")
    stddev = ImageStat.Stat(image).stddev
    assert max(stddev) > 20, f"screenshot looks blank: stddev {stddev}"
    colours = image.getcolors(maxcolors=1_000_000)
    assert colours is None or len(colours) > 50
