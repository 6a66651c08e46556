"""`/dbt-docs/`: the dbt documentation site the slow `docs` job of `pulse run` generates.

The job runs `dbt docs generate --target-path $PULSE_HOME/jobs/docs/target` (cli/realtime.py
`_jobs`); Datasette serves that folder's `index.html`, `manifest.json` and `catalog.json`
(only those three: a request can never name another file). Before the first docs job the
page is a 503 saying so. `target_dir(home)` is the one definition of the folder; a test
checks that the job writes where this module reads.
"""

from __future__ import annotations

from pathlib import Path

from datasette.utils.asgi import Response

PREFIX = "/dbt-docs/"
FILES = {
    "index.html": "text/html; charset=utf-8",
    "manifest.json": "application/json",
    "catalog.json": "application/json",
}
NO_CACHE = {"cache-control": "no-store"}


def target_dir(home: Path) -> Path:
    """Where the `docs` job writes and `/dbt-docs/` reads: $PULSE_HOME/jobs/docs/target."""
    return Path(home) / "jobs" / "docs" / "target"


def _folder(datasette) -> Path:
    folder = getattr(datasette, "_pulse_dbt_docs", None)
    if folder is None:
        from pisa_pulse.core import config

        folder = datasette._pulse_dbt_docs = target_dir(config.home())
    return Path(folder)


NOT_GENERATED = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>dbt docs: not generated yet</title></head>
<body><h1>dbt docs: not generated yet</h1>
<p>The documentation of the dbt project is written by the slow <code>docs</code> job of
<code>pulse run</code> (first 10 minutes after it starts, then every <code>--docs-every</code>
seconds, 1,800 by default), or by hand with
<code>pulse dbt docs generate --target-path {folder}</code>. This page shows it once
<code>{folder}/index.html</code> exists.</p>
<p><a href="/pulse">Browse the marts</a> · <a href="/dashboard">live dashboard</a></p>
</body></html>
"""


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


async def redirect(request):
    return Response.redirect(PREFIX)


async def docs_file(request, datasette):
    name = request.url_vars.get("name") or "index.html"
    folder = _folder(datasette)
    if name not in FILES:
        return Response.text("no such file in the dbt docs", status=404, headers=NO_CACHE)
    path = folder / name
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        if name == "index.html":
            body = NOT_GENERATED.format(folder=_escape(str(folder)))
            return Response.html(body, status=503, headers={**NO_CACHE, "retry-after": "60"})
        return Response.text(f"{name}: not generated yet", status=404, headers=NO_CACHE)
    return Response(content, content_type=FILES[name], headers=NO_CACHE)


ROUTES = [
    (r"^/dbt-docs$", redirect),
    (r"^/dbt-docs/(?P<name>[^/]*)$", docs_file),
]
