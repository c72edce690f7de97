"""``/docs``: Swagger UI served from this package, so it works offline and behind a district
firewall (FastAPI's own page loads it from a CDN).

The files in ``static/swagger-ui/`` are swagger-ui-dist 5.35.0 from the npm registry,
unchanged: ``swagger-ui-bundle.js``, ``swagger-ui.css`` and a favicon, with the project's
``LICENSE`` (Apache-2.0), ``NOTICE`` and the licenses of the libraries bundled in the
script (``swagger-ui-bundle.js.LICENSE.txt``). To update them, replace those files from a
newer swagger-ui-dist package and change the version here. ReDoc is not served (``/redoc``
answers 404): one documentation page is enough, and it would need its own copy.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse

from ..errors import NotFound

SWAGGER_UI_VERSION = "5.35.0"
STATIC = Path(__file__).resolve().parent / "static" / "swagger-ui"
DOCS_URL = "/docs"
ASSETS_URL = "/docs/assets"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"

#: the files served under ASSETS_URL, with their media types (nothing else is)
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
    "LICENSE": "text/plain; charset=utf-8",
    "NOTICE": "text/plain; charset=utf-8",
    "swagger-ui-bundle.js.LICENSE.txt": "text/plain; charset=utf-8",
}


def install(app: FastAPI) -> None:
    """Add ``/docs``, its assets and its OAuth 2.0 redirect page to an app built with
    ``docs_url=None`` and ``redoc_url=None``."""

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=root + (app.openapi_url or "/openapi.json"),
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon-32x32.png",
            oauth2_redirect_url=root + OAUTH2_REDIRECT_URL,
            # no request to the public validator service: the page works offline
            swagger_ui_parameters={"validatorUrl": None},
        )

    async def oauth2_redirect(request: Request) -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    async def asset(request: Request) -> FileResponse:
        name = request.path_params["name"]
        media_type = ASSETS.get(name)
        if media_type is None:
            raise NotFound(f"no documentation asset {name}")
        return FileResponse(STATIC / name, media_type=media_type, headers={"Cache-Control": "public, max-age=86400"})

    app.add_route(DOCS_URL, swagger_ui, include_in_schema=False)
    app.add_route(OAUTH2_REDIRECT_URL, oauth2_redirect, include_in_schema=False)
    app.add_route(ASSETS_URL + "/{name}", asset, include_in_schema=False)
