"""The few HTML pages LTI needs, on both sides: a titled page (errors, the launched view)
and the auto-submitting form of the OAuth 2.0 Form Post Response Mode (id_token launches,
Deep Linking 2.0 4.5 responses). Never cached: they carry tokens or per-user content."""

from __future__ import annotations

import html

from fastapi.responses import HTMLResponse

NO_STORE = {"Cache-Control": "no-store"}


def page(title: str, body_html: str, *, status: int = 200) -> HTMLResponse:
    doc = (
        '<!doctype html><html><head><meta charset="utf-8"><title>'
        f"{html.escape(title)}</title></head><body><h1>{html.escape(title)}</h1>{body_html}</body></html>"
    )
    return HTMLResponse(doc, status_code=status, headers=NO_STORE)


def form_post_page(action: str, fields: dict[str, str]) -> HTMLResponse:
    """An auto-submitting form posting ``fields`` to ``action``."""
    inputs = "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">' for k, v in fields.items())
    doc = (
        '<!doctype html><html><head><meta charset="utf-8"><title>Continuing</title></head>'
        f'<body onload="document.forms[0].submit()"><form method="post" action="{html.escape(action)}">{inputs}'
        '<noscript><button type="submit">Continue</button></noscript></form></body></html>'
    )
    return HTMLResponse(doc, headers=NO_STORE)
