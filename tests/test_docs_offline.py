"""``/docs`` works offline (issue 21 item 7): the page names only this server's URLs, and each
answers with the asset itself, in the right media type."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from gateway.api.docs import ASSETS, STATIC, SWAGGER_UI_VERSION


def test_the_docs_page_references_only_local_urls_and_each_one_answers(api) -> None:
    with httpx.Client(base_url=api.base_url) as c:
        page = c.get("/docs")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        html = page.text
        assert not re.search(r"(?i)\b(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", html), "the page names another host"
        refs = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert len(refs) == 3, refs  # the script, the stylesheet, the icon
        wanted = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}
        for ref in refs:
            assert ref.startswith("/"), ref
            r = c.get(ref)
            assert r.status_code == 200, ref
            assert r.headers["content-type"].startswith(wanted[Path(ref).suffix]), (ref, r.headers["content-type"])
            assert r.content == (STATIC / Path(ref).name).read_bytes()
        # the OpenAPI document it loads, and the OAuth 2.0 redirect page, are this server's too
        url = re.search(r"url: '([^']+)'", html).group(1)
        assert url == "/openapi.json" and c.get(url).status_code == 200
        assert c.get("/docs/oauth2-redirect").status_code == 200


def test_the_script_is_swagger_ui_and_its_licenses_are_served_beside_it(api) -> None:
    with httpx.Client(base_url=api.base_url) as c:
        script = c.get("/docs/assets/swagger-ui-bundle.js")
        assert b"SwaggerUIBundle" in script.content
        assert "Apache License" in c.get("/docs/assets/LICENSE").text
        assert "SmartBear" in c.get("/docs/assets/NOTICE").text
        # nothing else of the package is reachable through the assets route
        for name in ("../docs.py", "..%2Fdocs.py", "swagger-ui.js", "index.html"):
            assert c.get(f"/docs/assets/{name}").status_code == 404, name
        assert c.get("/redoc").status_code == 404  # not served: it would load ReDoc from a CDN


def test_every_asset_listed_ships_with_the_package() -> None:
    for name in ASSETS:
        assert (STATIC / name).is_file(), name
    assert f"swagger-ui-dist {SWAGGER_UI_VERSION}" in (Path(__file__).parents[1] / "gateway" / "api" / "docs.py").read_text()
    pyproject = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    assert '"api/static/swagger-ui/*"' in pyproject  # package data: the wheel carries them
