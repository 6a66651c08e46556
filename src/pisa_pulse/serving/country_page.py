"""`/country/<CNT>`: one page per country for analysts, from the published SQLite file.

Everything the published tables hold about one country: the key figures (submissions,
learning hours, ESCS and its inputs, DURECEC, BELONG), the calibration state
(`forage_escs.escs_provisional`), the data quality (values nulled, by reason and column),
the reconciliation of computed vs official indices, the source's freshness, a link to the
country's profile over time (the snapshot `country_profile_history`), and then every
row of every other published table that has a `country` column (so a mart published later
shows up without a change here). `/country/` lists the countries.

Read-only: through Datasette's own `mode=ro` connections to the file it serves, never the
warehouse. Country names are the codebook's (`static/countries.json`). Rendered with Jinja
(autoescaped) in `templates/pulse_country.html`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from datasette.utils.asgi import Response

DATABASE = "pulse"  # the Datasette name of the published SQLite file (as forage_plugin)
COUNTRIES_JSON = Path(__file__).resolve().parent / "static" / "countries.json"
TEMPLATES = Path(__file__).resolve().parent / "templates"
NO_CACHE = {"cache-control": "no-store"}
_CODE = re.compile(r"^[A-Za-z]{3}$")

# Indices of country_profile, in the order of the page: the Forage ones, then ESCS's inputs.
INDEX_LABELS = {
    "tmins": "TMINS, learning time (minutes per week)",
    "durecec": "DURECEC, early childhood education (years)",
    "belong": "BELONG, sense of belonging (index)",
    "escs": "ESCS, economic, social and cultural status (index)",
    "hisei": "HISEI, highest parental occupation (ISEI points), ESCS input",
    "pared": "PARED, highest parental education (years), ESCS input",
    "paredint": "PAREDINT, parental education, international (years)",
    "homepos": "HOMEPOS, home possessions (index), ESCS input",
}
# Tables shown in their own section; any other table with a `country` column is listed after.
OWN_SECTIONS = (
    "country_profile",
    "forage_learning_hours",
    "forage_escs",
    "forage_early_education_belonging",
    "data_quality",
    "reconciliation",
    "country_profile_history",  # linked (its versions are many), not listed row by row
)
HISTORY = "country_profile_history"  # the dbt snapshot of country_profile, for analysts


def country_names() -> dict[str, str]:
    return json.loads(COUNTRIES_JSON.read_text(encoding="utf-8"))


_NAMES = country_names()


def fmt(value, decimals: int = 3) -> str:
    """How the page writes a value: integers as they are, reals to `decimals`, NULL as '—'."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{decimals}f}"
    return str(value)


def share(value) -> str:
    """A share 0..1 as a percentage with one decimal."""
    return "—" if value is None else f"{100 * value:.1f} %"


def flag(value) -> str:
    """A 0/1 column (weighted, provisional) as yes/no."""
    return "—" if value is None else ("yes" if value else "no")


async def _rows(db, table: str, column: str, code: str) -> list[dict]:
    result = await db.execute(f'select * from "{table}" where "{column}" = :code', {"code": code})
    return [dict(r) for r in result.rows]


async def _published(db) -> dict[str, list[str]]:
    """Every published table → its columns."""
    tables = {}
    for name in await db.table_names():
        tables[name] = await db.table_columns(name)
    return tables


def _title(datasette, table: str) -> str:
    meta = datasette.metadata(database=DATABASE, table=table, fallback=False) or {}
    return meta.get("title") or table


async def gather(datasette, code: str) -> dict:
    """What the page shows for `code` (upper-case), as plain values (the template formats)."""
    db = datasette.get_database(DATABASE)
    tables = await _published(db)
    found: dict[str, list[dict]] = {}
    for table, columns in tables.items():
        if "country" in columns:
            found[table] = await _rows(db, table, "country", code)
    one = {t: (found.get(t) or [None])[0] for t in OWN_SECTIONS if t != "data_quality"}
    profile = one.get("country_profile")
    indices = []
    if profile:
        for x, label in INDEX_LABELS.items():
            if f"{x}_mean" in profile:
                indices.append(
                    {
                        "name": x,
                        "label": label,
                        "mean": profile[f"{x}_mean"],
                        "n": profile.get(f"{x}_n"),
                        "weighted": profile.get(f"{x}_weighted"),
                        "official_share": profile.get(f"{x}_official_share"),
                    }
                )
    quality = sorted(
        found.get("data_quality", []),
        key=lambda r: (-(r.get("values_nulled") or 0), r.get("column_name") or ""),
    )
    by_reason: dict[str, int] = {}
    for r in quality:
        by_reason[r["reason"]] = by_reason.get(r["reason"], 0) + (r.get("values_nulled") or 0)
    reconciliation = sorted(found.get("reconciliation", []), key=lambda r: r["index_name"])
    freshness = (await _rows(db, "freshness", "source", code))[:1] if "freshness" in tables else []
    publication = None
    if "publication" in tables:
        rows = (await db.execute("select published_at from publication")).rows
        publication = rows[0][0] if rows else None
    others = [
        {"table": t, "title": _title(datasette, t), "columns": tables[t], "rows": rows}
        for t, rows in sorted(found.items())
        if t not in OWN_SECTIONS and rows
    ]
    submissions = next(
        (
            r.get("submissions")
            for r in (profile, one.get("forage_early_education_belonging"))
            if r and r.get("submissions") is not None
        ),
        None,
    )
    return {
        "code": code,
        "name": _NAMES.get(code, code),
        "published_at": publication,
        "has_data": any(found.values()),
        "submissions": submissions,
        "profile": profile,
        "indices": indices,
        "hours": one.get("forage_learning_hours"),
        "escs": one.get("forage_escs"),
        "early": one.get("forage_early_education_belonging"),
        "quality": quality,
        "quality_by_reason": sorted(by_reason.items(), key=lambda kv: (-kv[1], kv[0])),
        "quality_total": sum(by_reason.values()),
        "quality_published": "data_quality" in tables,
        "reconciliation": reconciliation,
        "reconciliation_published": "reconciliation" in tables,
        "history_versions": len(found.get(HISTORY, [])) if HISTORY in tables else None,
        "freshness": freshness[0] if freshness else None,
        "others": others,
    }


async def _render(datasette, name: str, context: dict, request) -> str:
    """Render templates/<name> with Datasette's Jinja environment (autoescaped; it extends
    Datasette's base.html). Not through `template_dir`: that also turns on Datasette's custom
    pages lookup for every 404."""
    cache = getattr(datasette, "_pulse_templates", None)
    if cache is None:
        cache = datasette._pulse_templates = {}
    if name not in cache:
        cache[name] = datasette.jinja_env.from_string((TEMPLATES / name).read_text())
    return await datasette.render_template(cache[name], context, request=request)


def _html(body: str, status: int = 200) -> Response:
    return Response.html(body, status=status, headers=NO_CACHE)


async def country(request, datasette):
    raw = request.url_vars["code"]
    code = raw.upper()
    if not _CODE.match(raw) or code not in _NAMES:
        body = await _render(datasette, "pulse_country.html", {"unknown": raw}, request)
        return _html(body, status=404)
    context = await gather(datasette, code)
    context.update(fmt=fmt, share=share, flag=flag, unknown=None)
    body = await _render(datasette, "pulse_country.html", context, request)
    return _html(body)


async def country_index(request, datasette):
    db = datasette.get_database(DATABASE)
    tables = await _published(db)
    with_data = set()
    for table, columns in tables.items():
        if "country" in columns:
            result = await db.execute(f'select distinct country from "{table}"')
            with_data.update(r[0] for r in result.rows)
    countries = [
        {"code": c, "name": n, "has_data": c in with_data}
        for c, n in sorted(_NAMES.items(), key=lambda kv: kv[1])
    ]
    body = await _render(datasette, "pulse_countries.html", {"countries": countries}, request)
    return _html(body)


ROUTES = [
    (r"^/country/?$", country_index),
    (r"^/country/(?P<code>[^/]+)$", country),
]
