"""``/dashboard``: the provincial office's web page, served as static files by the API itself.

The page is plain HTML and JavaScript that calls the JSON API with the token the user typed;
it needs no build step. Its one library, Chart.js, is installed by the project's build
(``make``: ``npm ci`` in services/api/dashboard) into a git-ignored node_modules and served
from here, so the page loads nothing from any other host.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from services.web.problems import Problem

DASHBOARD_DIR = Path(__file__).resolve().parent.parent / "dashboard"
CHART_JS = DASHBOARD_DIR / "node_modules" / "chart.js" / "dist" / "chart.umd.min.js"

# The page runs only its own scripts and talks only to this API: an injected title or name
# could never run script or send the token elsewhere.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


@router.get("/dashboard")
def dashboard_page() -> FileResponse:
    page = DASHBOARD_DIR / "index.html"
    if not page.is_file():  # an install that left the package data out
        raise Problem(404, "Not Found", "The dashboard's files are not installed.")
    return FileResponse(page, media_type="text/html", headers=PAGE_HEADERS)


@router.get("/dashboard/")
def dashboard_slash() -> RedirectResponse:
    return RedirectResponse("/dashboard", status_code=308)


@router.get("/dashboard/vendor/chart.js")
def chart_library() -> FileResponse:
    if not CHART_JS.is_file():
        raise Problem(
            404,
            "Not Found",
            "Chart.js is not installed; run `make` (npm ci in services/api/dashboard).",
        )
    return FileResponse(CHART_JS, media_type="text/javascript", headers=PAGE_HEADERS)


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.mount(
        "/dashboard/static",
        StaticFiles(directory=DASHBOARD_DIR / "static", check_dir=False),
        name="dashboard-static",
    )
