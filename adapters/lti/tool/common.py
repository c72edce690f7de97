"""What every endpoint of Tessera-as-tool shares: its refusal (``LtiLaunchError``), the shape a
refusal takes on the wire (LTI core 4.4.1), and the URL platforms and browsers see it at."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING
from urllib.parse import urlencode, urlsplit, urlunsplit

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from gateway.errors import TesseraError

from ..pages import page

if TYPE_CHECKING:
    from gateway.api.context import AppContext


class LtiLaunchError(TesseraError):
    """A refused login or launch. ``return_url`` only when it comes from a verified id_token."""

    status = 400
    title = "LTI launch refused"
    type_slug = "lti-launch"

    def __init__(self, detail: str, *, status: int = 400, return_url: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.return_url = return_url


def refuse(detail: str, *, status: int = 400, return_url: str | None = None) -> LtiLaunchError:
    return LtiLaunchError(detail, status=status, return_url=return_url)


def render_error(request: Request, exc: TesseraError) -> Response:
    """LTI core 4.4.1: back to the platform's return_url with ``lti_errormsg``, else a page."""
    return_url = getattr(exc, "return_url", None)
    if return_url:
        parts = urlsplit(return_url)
        query = "&".join(q for q in (parts.query, urlencode({"lti_errormsg": exc.detail})) if q)
        return RedirectResponse(urlunsplit(parts._replace(query=query)), status_code=302)
    details = "".join(f"<li>{html.escape(str(e))}</li>" for e in exc.errors)
    return page(exc.title, f"<p>{html.escape(exc.detail)}</p>" + (f"<ul>{details}</ul>" if details else ""), status=exc.status)


def public_base(ctx: AppContext, request: Request) -> str:
    """The gateway's URL as platforms and browsers see it."""
    return (ctx.settings.public_url or str(request.base_url)).rstrip("/")


__all__ = ["LtiLaunchError", "public_base", "refuse", "render_error"]
