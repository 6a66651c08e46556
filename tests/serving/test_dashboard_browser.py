"""The live dashboard in a real headless Chromium: the five charts render, follow the data,
stay readable at 82 countries (1,400 and 390 px), show each chart's own state, keep a tooltip
across the poll, and warn when the data go stale (the publisher stopped)."""

from __future__ import annotations

import sqlite3
import subprocess
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from pisa_pulse.core import codebook
from pisa_pulse.serving.health import ENV_PUBLICATION_AGE
from pisa_pulse.serving.publisher import Publisher, ensure_sqlite
from tests.support.databases import create_database
from tests.support.datasette import start_serving
from tests.support.serving_marts import NULL_COUNTRY, create_marts, execute, random_marts

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
WIDTHS = (1400, 390)
STALE_AFTER_S = 2  # the server's publication-age limit in these tests
# An outlier on two charts: it must not squash the other 80 countries.
OUTLIERS = {"QAT": {"hours": 90}, "QCI": {"durecec": 12.0}}
CARDS = ("submissions", "line", "bars", "map", "bubbles")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium"),
]


class Running:
    """A publisher publishing every 0.25 s in a thread, as `pulse publish` does; stoppable."""

    def __init__(self, url: str, path: Path):
        self.url, self.path = url, path
        self.thread = None

    def start(self) -> None:
        self.stop_event = threading.Event()
        self.publisher = Publisher(self.url, self.path)
        self.thread = threading.Thread(
            target=self.publisher.run, args=(0.25, self.stop_event), daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        if self.thread is not None:
            self.stop_event.set()
            self.thread.join(10)
            self.publisher.close()
            self.thread = None


def serve(path: Path, home: Path) -> tuple[subprocess.Popen, str]:
    return start_serving(
        path, home / f"serve-{path.stem}.log", env={ENV_PUBLICATION_AGE: str(STALE_AFTER_S)}
    )


@pytest.fixture(scope="module")
def site(pg_server, tmp_path_factory):
    url = create_database(pg_server, f"serving_ui_{uuid.uuid4().hex[:8]}")
    # Every PISA 2018 economy (82), as in production, with outliers.
    data = random_marts(countries=tuple(codebook.countries()), outliers=OUTLIERS)
    create_marts(url, data)
    # Like the real `freshness` view, it changes with the clock: a running publisher publishes
    # every tick, so a stopped one shows as an ageing publication.
    execute(
        url,
        "drop table marts.freshness; create view marts.freshness as select 'overall'::text"
        " as source, 300::bigint as lag_ms, 'ok'::text as status, now() as checked_at",
    )
    home = tmp_path_factory.mktemp("dashboard")
    path = home / "pulse.db"
    publisher = Publisher(url, path)
    publisher.publish_once()
    running = Running(url, path)
    running.start()
    server, base = serve(path, home)
    try:
        yield base, url, data, publisher, home, running
    finally:
        running.stop()
        server.terminate()
        server.wait(10)
        publisher.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def open_page(browser, base: str, width: int):
    page = browser.new_page(viewport={"width": width, "height": 1500 if width > 500 else 844})
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
    return page


@pytest.fixture(scope="module")
def page(site, browser):
    page = open_page(browser, site[0], 1400)
    yield page
    page.close()


def count_shown(page) -> int:
    return int(page.get_attribute("#submissions-count", "data-count") or -1)


def wait_all_drawn(page, timeout=15_000) -> None:
    cards = ",".join(f"'{c}'" for c in CARDS)
    page.wait_for_function(
        f"[{cards}].every(c => document.getElementById('card-' + c).dataset.state === 'ok')"
        " && document.querySelectorAll('#chart-map path[data-id]').length > 150",
        timeout=timeout,
    )


def with_value(rows) -> list:
    return [r for r in rows if r[1] is not None]


def test_the_five_charts_render(site, page):
    _, _, data, _, home, _ = site
    expected = data["forage_submissions"][0][0]
    page.wait_for_selector(f'#submissions-count[data-count="{expected}"]', timeout=10_000)
    assert page.inner_text("#submissions-count").replace(",", "") == str(expected)
    wait_all_drawn(page)

    hourly = [r for r in data["forage_submissions_over_time"] if r[0] == "hour"]
    assert page.locator("#chart-line circle").count() == len(hourly)
    assert page.locator("#chart-line path").count() >= 1
    # 81 countries with a value: the top and bottom 12 by default, all on request, sorted by
    # hours (ties by name).
    names = codebook.country_names()
    hours = sorted(with_value(data["forage_learning_hours"]), key=lambda r: (-r[1], names[r[0]]))
    assert page.locator("#chart-bars rect.bar").count() == 24
    page.click("#bars-all")
    page.wait_for_function(
        f"document.querySelectorAll('#chart-bars rect.bar').length === {len(hours)}"
    )
    shown = page.eval_on_selector_all(
        "#chart-bars g.bar-row", "rows => rows.map(r => r.dataset.id)"
    )
    ys = page.eval_on_selector_all(
        "#chart-bars rect.bar", "rs => rs.map(r => r.getBoundingClientRect().top)"
    )
    order = [code for _, code in sorted(zip(ys, shown, strict=True))]
    assert order == [r[0] for r in hours]
    # Names from the codebook, not codes, on the bars; the outlier is marked, not squashing.
    assert page.text_content('#chart-bars g.bar-row[data-id="QAT"] text.bar-name') == "Qatar"
    assert page.get_attribute('#chart-bars g.bar-row[data-id="QAT"] path.outlier-mark', "d")
    assert "Qatar 90 h" in page.inner_text("#note-bars")
    widths = page.eval_on_selector_all(
        "#chart-bars rect.bar", "rs => rs.map(r => r.getBoundingClientRect().width)"
    )
    assert sorted(widths)[len(widths) // 2] > 0.4 * max(widths)  # the median bar is not squashed
    ticks = page.eval_on_selector_all(
        "#chart-bars .axis.x .tick text", "ts => ts.map(t => Number(t.textContent))"
    )
    assert max(ticks) < OUTLIERS["QAT"]["hours"]  # the axis is clamped below the outlier
    page.click("#bars-all")

    # The choropleth: published countries coloured, others (and its legend swatch) "no data".
    features = set(
        page.eval_on_selector_all("#chart-map path[data-id]", "ps => ps.map(p => p.dataset.id)")
    )
    aliases = {"TAP": "TWN", "KSV": "XKX"}  # PISA's codes for Taiwan and Kosovo
    coloured = 0
    for country, _value, *_ in with_value(data["forage_escs"]):
        feature = aliases.get(country, country)
        if feature not in features:  # regions (QCI…) and small economies (MLT…): in the note
            assert names[country] in page.inner_text("#note-map"), country
            continue
        fill = page.get_attribute(f'#chart-map path[data-id="{feature}"]', "fill")
        assert fill and fill != "#e3e3e3", country
        coloured += 1
    assert coloured >= 60
    assert page.get_attribute('#chart-map path[data-id="NGA"]', "fill") == "#e3e3e3"
    assert page.get_attribute("#chart-map rect.no-data", "fill") == "#e3e3e3"
    assert page.text_content("#chart-map text.no-data-label") == "no data"

    bubbles = with_value(data["forage_early_education_belonging"])
    assert page.locator("#chart-bubbles circle.bubble").count() == len(bubbles)
    assert page.locator("#chart-bubbles circle.size-ref").count() >= 2  # bubble-size legend
    assert page.get_attribute('#chart-bubbles circle.bubble[data-id="QCI"]', "class").endswith(
        "outlier"
    )
    assert names["QCI"] in page.inner_text("#note-bubbles")
    for chart in ("line", "bars", "bubbles"):
        assert page.locator(f"#chart-{chart} text.axis-title").count() >= 1, chart

    # The selector shows the codebook's names; accessibility: names, live regions, tables.
    assert page.inner_text("#countries option[value=QCI]") == "B-S-J-Z (China) (QCI)"
    for chart in ("line", "bars", "map", "bubbles"):
        label = page.get_attribute(f"#chart-{chart}", "aria-label")
        assert label and len(label) > 20, chart
        page.click(f'details[data-chart="{chart}"] summary')
    page.wait_for_function(
        f"document.querySelectorAll('details[data-chart=bars] tbody tr').length === {len(hours)}"
    )
    page.wait_for_function(
        "document.querySelectorAll('details[data-chart=bubbles] tbody tr').length === "
        f"{len(bubbles)}"
    )
    assert names["QCI"] in page.inner_text("details[data-chart=bubbles] table")
    for chart in ("line", "bars", "map", "bubbles"):
        page.click(f'details[data-chart="{chart}"] summary')
    assert page.get_attribute("#submissions-count", "aria-live") == "polite"
    assert page.get_attribute("#status", "aria-live") == "polite"

    shot = home / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    assert_not_blank(shot)
    assert page.outside_requests == []
    assert page.js_errors == []


OVERLAPS = """
svg => {
  const box = svg.getBoundingClientRect();
  const texts = [...svg.querySelectorAll('text')].filter(t => t.textContent.trim()
      && t.getAttribute('visibility') !== 'hidden' && t.getBBox().width > 0);
  const boxes = texts.map(t => [t.textContent, t.getBoundingClientRect()]);
  const found = [];
  for (const [s, b] of boxes) {
    if (b.left < box.left - 1 || b.right > box.right + 1 || b.top < box.top - 1
        || b.bottom > box.bottom + 1) found.push(['outside the chart', s]);
  }
  for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
    const [s, a] = boxes[i], [t, b] = boxes[j];
    const dx = Math.min(a.right, b.right) - Math.max(a.left, b.left);
    const dy = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
    if (dx > 0.5 && dy > 0.5) found.push([s, t]);
  }
  return {count: texts.length, found};
}
"""


@pytest.mark.parametrize("width", WIDTHS)
def test_every_chart_draws_and_no_two_labels_overlap(site, browser, width):
    base, _, _, _, home, _ = site
    page = open_page(browser, base, width)
    try:
        wait_all_drawn(page)
        for bars in ("top and bottom", "all"):
            if bars == "all":
                page.click("#bars-all")
                page.wait_for_function(
                    "document.querySelectorAll('#chart-bars rect.bar').length > 24"
                )
            for chart in ("line", "bars", "map", "bubbles"):
                svg = page.locator(f"#chart-{chart}")
                box = svg.bounding_box()
                assert box["width"] >= 280 and box["x"] >= 0 and box["x"] + box["width"] <= width
                result = svg.evaluate(OVERLAPS)
                assert result["count"] >= 5, (chart, result)
                assert result["found"] == [], (width, chart, bars, result["found"][:10])
        # Usable at phone width: nothing wider than the screen.
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        page.screenshot(path=str(home / f"dashboard-{width}.png"), full_page=True)
        assert page.js_errors == []
    finally:
        page.close()


def test_a_stopped_publisher_turns_the_stale_warning_on_and_a_restart_off(site, page):
    *_, running = site
    wait_all_drawn(page)
    assert page.is_hidden("#stale-warning")
    assert "live" in page.inner_text("#status")
    running.stop()
    stopped = time.monotonic()
    page.wait_for_selector("#stale-warning", state="visible", timeout=5_000)
    assert time.monotonic() - stopped < 5
    warning = page.inner_text("#stale-warning")
    assert "Stale data" in warning and "publisher" in warning and " old" in warning
    # The age is the server's, not this browser's: it is at least the limit.
    assert float(page.get_attribute("#status", "data-age")) >= STALE_AFTER_S
    assert "stale" in page.get_attribute("#status", "class")
    running.start()
    restarted = time.monotonic()
    page.wait_for_selector("#stale-warning", state="hidden", timeout=5_000)
    assert time.monotonic() - restarted < 5
    assert "live" in page.inner_text("#status")


def test_a_tooltip_persists_across_a_poll(site, page):
    _, url, data, _, _, _ = site
    wait_all_drawn(page)
    top = max(with_value(data["forage_learning_hours"]), key=lambda r: r[1])
    bar = f'#chart-bars rect.bar[data-id="{top[0]}"]'
    page.hover(bar, position={"x": 5, "y": 5})
    page.wait_for_selector("#tooltip", state="visible", timeout=2_000)
    before = page.inner_text("#tooltip")
    assert f"{top[1]} h" in before and "Qatar" in before
    page.eval_on_selector(bar, "node => { node.dataset.marked = 'yes'; }")
    execute(url, "update marts.forage_learning_hours set hours = hours + 1")
    # The running publisher publishes it; the next poll updates the same bar under the pointer.
    page.wait_for_function(
        f"document.getElementById('tooltip').textContent.includes('{top[1] + 1} h')",
        timeout=5_000,
    )
    assert page.is_visible("#tooltip")
    assert page.get_attribute(bar, "data-marked") == "yes"  # the same node: a keyed update
    page.mouse.move(0, 0)
    execute(url, "update marts.forage_learning_hours set hours = hours - 1")


def test_a_provisional_escs_is_marked_on_the_map(site, page):
    """forage_escs.escs_provisional (HOMEPOS not yet final) reaches the map: a dashed
    outline, the tooltip, the note and the table say so; Forage's JSON keeps its shape."""
    base, url, data, _publisher, _home, _ = site
    country = next(c for c, v, *_ in data["forage_escs"] if v is not None and c in ("FRA", "ITA"))
    execute(url, "update marts.forage_escs set escs_provisional = (country = %s)", (country,))
    try:
        page.wait_for_selector(f'#chart-map path[data-id="{country}"][data-provisional=yes]',
                               timeout=12_000)  # fmt: skip
        assert page.locator("#chart-map path[data-provisional=yes]").count() == 1
        name = codebook.country_names()[country]
        assert "Provisional ESCS" in page.inner_text("#note-map") and name in page.inner_text(
            "#note-map"
        )
        # France's and Italy's shapes have sea at their bounding box's centre: no real hover
        page.dispatch_event(f'#chart-map path[data-id="{country}"]', "pointerenter")
        page.wait_for_function(
            "document.getElementById('tooltip').textContent.includes('provisional')",
            timeout=3_000,
        )
        page.dispatch_event(f'#chart-map path[data-id="{country}"]', "pointerleave")
        escs = httpx.get(base + "/forage/escs", timeout=5).json()
        assert all(set(d) == {"id", "value"} for d in escs["datasets"])
    finally:
        execute(url, "update marts.forage_escs set escs_provisional = false")


def test_the_dashboard_follows_new_publications(site, page):
    _, url, data, publisher, home, _ = site
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
        "document.querySelectorAll('#chart-bars rect.bar').length === 2", timeout=3_000
    )
    page.wait_for_function(
        "document.querySelectorAll('#chart-bubbles circle.bubble').length === 2", timeout=3_000
    )
    assert page.get_attribute('#chart-map path[data-id="ITA"]', "fill") == "#e3e3e3"
    assert page.text_content('#chart-bars g.bar-row[data-id="FRA"] text.bar-name') == "France"
    page.select_option("#countries", [NULL_COUNTRY])
    page.wait_for_selector("#card-bars[data-state=empty]", timeout=3_000)
    assert page.inner_text("#state-bars") == "No data for the selected countries."
    page.click("#clear-countries")
    page.wait_for_function(
        "document.querySelectorAll('#chart-bars rect.bar').length > 2", timeout=3_000
    )


def test_before_the_first_publication_each_chart_says_so_on_its_own(site, browser, tmp_path):
    """Only the count is published: it draws; the four others wait, each with its message."""
    path = tmp_path / "pulse.db"
    ensure_sqlite(path)
    server, base = serve(path, tmp_path)
    try:
        page = open_page(browser, base, 1400)
        for card in ("line", "bars", "map", "bubbles"):
            page.wait_for_selector(f"#card-{card}[data-state=waiting]", timeout=5_000)
            assert page.inner_text(f"#state-{card}") == "Waiting for the first publication…"
        assert "waiting for the first publication" in page.inner_text("#status")
        conn = sqlite3.connect(path)
        conn.execute("create table forage_submissions (count INTEGER)")
        conn.execute("insert into forage_submissions values (42)")
        conn.commit()
        conn.close()
        page.wait_for_selector('#submissions-count[data-count="42"]', timeout=5_000)
        assert page.get_attribute("#card-submissions", "data-state") == "ok"
        assert page.get_attribute("#card-map", "data-state") == "waiting"
        assert "HTTP 503" not in page.inner_text("body")
        assert page.js_errors == []
        page.close()
    finally:
        server.terminate()
        server.wait(10)


def assert_not_blank(path: Path) -> None:
    from PIL import Image, ImageStat

    image = Image.open(path).convert("RGB")
    stddev = ImageStat.Stat(image).stddev
    assert max(stddev) > 20, f"screenshot looks blank: stddev {stddev}"
    colours = image.getcolors(maxcolors=1_000_000)
    assert colours is None or len(colours) > 50
