"""Datasette plugin: Forage's five endpoints, the live dashboard page, CORS and no caching.

Routes (all GET, all read-only):
  /forage/submissions                     {"count": int}
  /forage/submissions_over_time           line chart; ?granularity=hour (default) | minute
  /forage/learning_hours_per_week         bars; ?countries=FRA,ITA
  /forage/escs                            choropleth; ?countries=…
  /forage/early_education_and_belonging   bubbles; ?countries=…
  /forage/                                the five URLs
  /-/pulse-health                         200 while the data are fresh, 503 and why if not
  /dashboard                              the five charts drawn as Forage does, live
  /country/<CNT>, /country/               a page per country for analysts (country_page.py)
  /dbt-docs/                              the dbt docs the `docs` job generates (dbt_docs.py)

Every /forage/ answer from a publication carries `Last-Modified` and `X-Pulse-Published-At`
(that publication) and `X-Pulse-Data-Age` (seconds, by the server's clock; serving/health.py).

The /forage/ routes are answered in the ASGI wrapper, before Datasette's router: Forage polls
them every second from every open dashboard, and they need none of Datasette's machinery.
"""

from __future__ import annotations

import json
import mimetypes
import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import parse_qs

from datasette import hookimpl
from datasette.utils.asgi import Response

from pisa_pulse.serving import catalog, country_page, dbt_docs, forage
from pisa_pulse.serving.health import Publication, Thresholds, report
from pisa_pulse.serving.publisher import PUBLICATION_TABLE
from pisa_pulse.serving.reader import PublishedTables, TableMissing

DATABASE = "pulse"  # the Datasette name of the published SQLite file
HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
DASHBOARD_HTML = HERE / "templates" / "dashboard.html"
HEALTH_PATH = "/-/pulse-health"
MAX_QUERY_FIELDS = 20
MAX_MEMO = 256  # encoded answers kept per publication (distinct query strings)

# Every response: readable from any origin (Forage's page), never cached beyond the 1 s poll.
CORS_HEADERS = {
    "access-control-allow-origin": "*",
    "access-control-allow-methods": "GET, HEAD, OPTIONS",
    "access-control-allow-headers": "*",
    "access-control-max-age": "600",
    # So that Forage's page (another origin) may read how old the data are.
    "access-control-expose-headers": "Last-Modified, X-Pulse-Data-Age, X-Pulse-Published-At",
}
NO_CACHE = {"cache-control": "no-store"}


class _Charts(Mapping):
    """Forage chart → the published table it reads, from dbt's manifest (`meta.served.chart`
    of the served marts, serving/catalog.py): read once per process, on first use, so the
    per-request path costs a dict lookup."""

    def __init__(self):
        self._charts: dict[str, str] | None = None

    def _load(self) -> dict[str, str]:
        if self._charts is None:
            self._charts = catalog.load().charts()
        return self._charts

    def use(self, served: catalog.Catalog) -> None:
        """Take the charts of this catalog (make_datasette passes the one it serves)."""
        self._charts = served.charts()

    def __getitem__(self, chart: str) -> str:
        return self._load()[chart]

    def __contains__(self, chart) -> bool:
        return chart in self._load()

    def __iter__(self):
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())


CHARTS = _Charts()


def _reader(datasette) -> PublishedTables:
    reader = getattr(datasette, "_pulse_reader", None)
    if reader is None:
        reader = PublishedTables(datasette.get_database(DATABASE).path)
        datasette._pulse_reader = reader
    return reader


def _thresholds(datasette) -> Thresholds:
    limits = getattr(datasette, "_pulse_thresholds", None)
    if limits is None:
        limits = datasette._pulse_thresholds = Thresholds.from_env()
    return limits


_PUBLICATION_KEY = "publication"  # in reader.memo: dropped with the data it describes


def _publication(reader: PublishedTables) -> Publication | None:
    """The current publication's metadata, read once per publication (reader.refresh() first)."""
    if _PUBLICATION_KEY in reader.memo:
        return reader.memo[_PUBLICATION_KEY]
    try:
        freshness = reader.rows("freshness")
    except TableMissing:
        freshness = []
    try:
        pub = Publication.from_rows(reader.rows(PUBLICATION_TABLE), freshness)
    except (TableMissing, ValueError, TypeError):  # none yet, or a row it cannot read
        pub = None
    reader.memo[_PUBLICATION_KEY] = pub
    return pub


def _params(query: bytes) -> dict[str, list[str]]:
    try:
        return parse_qs(
            query.decode("latin-1"), keep_blank_values=True, max_num_fields=MAX_QUERY_FIELDS
        )
    except ValueError as exc:  # too many fields
        raise forage.BadRequest("too many query parameters") from exc


def answer(chart: str, rows: list[dict], params: dict[str, list[str]]) -> dict:
    """The JSON body of one chart; raises forage.BadRequest on a malformed query."""
    if chart == "submissions":
        return forage.submissions(rows)
    if chart == "submissions_over_time":
        return forage.submissions_over_time(
            rows, forage.parse_granularity(forage.single(params, "granularity"))
        )
    countries = forage.parse_countries(forage.single(params, "countries"))
    if chart == "learning_hours_per_week":
        return forage.learning_hours(rows, countries)
    if chart == "escs":
        return forage.escs(rows, countries)
    return forage.early_education_and_belonging(rows, countries)


def _encode(body: dict) -> bytes:
    return json.dumps(body).encode()


def forage_reply(datasette, method: str, path: str, query: bytes) -> tuple[int, bytes, list]:
    """(status, JSON body, extra headers) for a request to /forage/…; never raises."""
    name = path[len("/forage/") :]
    if name == "":
        base = "/forage/"
        return 200, _encode({"charts": {c: base + c for c in CHARTS}}), []
    if name not in CHARTS:
        return 404, _encode({"error": f"unknown chart; one of: {', '.join(CHARTS)}"}), []
    if method not in ("GET", "HEAD"):
        return 405, _encode({"error": "read-only: GET only"}), []
    reader = _reader(datasette)
    extra = []
    try:
        reader.refresh()
        pub = _publication(reader)
        if pub is not None:
            extra = pub.age_headers(time.time())
        key = (name, query)
        body = reader.memo.get(key)
        if body is None:
            params = _params(query)
            # Validate before reading so a malformed query is a 400 even before a publication.
            answer(name, [], params)
            body = _encode(answer(name, reader.rows(CHARTS[name]), params))
            if len(reader.memo) < MAX_MEMO:
                reader.memo[key] = body
        return 200, body, extra
    except forage.BadRequest as exc:
        return 400, _encode({"error": str(exc)}), extra
    except TableMissing as exc:
        return 503, _encode({"error": f"not published yet: {exc}"}), extra
    except sqlite3.Error as exc:  # e.g. the file is being recreated: say so, retry next poll
        reader.close()
        return 503, _encode({"error": f"temporarily unavailable: {exc}"}), []


def health_reply(datasette) -> tuple[int, bytes]:
    """The health URL: 200 while fresh, 503 with the reasons (src/pisa_pulse/serving/health.py)."""
    reader = _reader(datasette)
    try:
        reader.refresh()
        pub = _publication(reader)
    except TableMissing:
        pub = None
    except sqlite3.Error:
        reader.close()
        pub = None
    status, body = report(pub, _thresholds(datasette), time.time())
    return status, _encode(body)


async def dashboard(request):
    return Response.html(DASHBOARD_HTML.read_text(), headers=NO_CACHE)


# The dashboard's own files, listed once: a request can only ever name one of these.
_STATIC_FILES = {str(p.relative_to(STATIC_DIR)): p for p in STATIC_DIR.rglob("*") if p.is_file()}


async def static_file(request):
    path = _STATIC_FILES.get(request.url_vars["path"])
    if path is None:
        return Response.json({"error": "no such file"}, status=404)
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if path.suffix == ".json":
        content_type = "application/json"
    return Response(path.read_bytes(), content_type=content_type, headers=NO_CACHE)


@hookimpl
def register_routes():
    return [
        (r"^/dashboard/?$", dashboard),
        (r"^/-/pulse/(?P<path>.+)$", static_file),
        *country_page.ROUTES,  # /country/<CNT>: a page per country for analysts
        *dbt_docs.ROUTES,  # /dbt-docs/: the docs job's dbt documentation
    ]


def _with_headers(headers: list, extra: dict[str, str]) -> list:
    names = {k.encode() for k in extra}
    kept = [(k, v) for k, v in headers if k.lower() not in names]
    return kept + [(k.encode(), v.encode()) for k, v in extra.items()]


_PREFLIGHT_HEADERS = _with_headers([], {**CORS_HEADERS, **NO_CACHE})
_JSON_HEADERS = _with_headers(
    [], {**CORS_HEADERS, **NO_CACHE, "content-type": "application/json; charset=utf-8"}
)


@hookimpl
def asgi_wrapper(datasette):
    """Forage's routes; CORS on every response, OPTIONS preflight, no caching beyond 1 s."""

    def wrap(app):
        async def wrapped(scope, receive, send):
            if scope["type"] != "http":
                return await app(scope, receive, send)
            method = scope["method"]
            if method == "OPTIONS":
                await send({"type": "http.response.start", "status": 204,
                            "headers": _PREFLIGHT_HEADERS})  # fmt: skip
                await send({"type": "http.response.body", "body": b""})
                return
            path = scope["path"]
            fast = path == "/forage" or path.startswith("/forage/") or path == HEALTH_PATH
            if fast:
                if path == HEALTH_PATH:
                    status, body = health_reply(datasette)
                    extra = []
                else:
                    status, body, extra = forage_reply(
                        datasette, method, path if path != "/forage" else "/forage/",
                        scope.get("query_string", b""),
                    )  # fmt: skip
                headers = [*_JSON_HEADERS, *extra, (b"content-length", str(len(body)).encode())]
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send(
                    {"type": "http.response.body", "body": b"" if method == "HEAD" else body}
                )
                return

            async def send_with_headers(message):
                if message["type"] == "http.response.start":
                    headers = list(message.get("headers", []))
                    extra = dict(CORS_HEADERS)
                    if not _cache_ok(headers):
                        extra.update(NO_CACHE)
                    message = {**message, "headers": _with_headers(headers, extra)}
                await send(message)

            return await app(scope, receive, send_with_headers)

        return wrapped

    return wrap


def _cache_ok(headers: list) -> bool:
    """True when the response already forbids caching beyond one second."""
    for k, v in headers:
        if k.lower() == b"cache-control":
            value = v.decode("latin-1").lower()
            if "no-store" in value or "no-cache" in value:
                return True
            for part in value.split(","):
                name, _, seconds = part.strip().partition("=")
                if name == "max-age" and seconds.isdigit() and int(seconds) <= 1:
                    return True
            return False
    return False
