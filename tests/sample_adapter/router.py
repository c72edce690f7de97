"""``GET /sample/hello``: the greeting setting, for a caller holding ``sample.read``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, Depends

from gateway.auth import Principal

if TYPE_CHECKING:
    from gateway.api.context import AppContext


def build_router(ctx: AppContext) -> APIRouter:
    router = APIRouter(prefix="/sample", tags=["sample"])
    greeting = ctx.adapter_settings["sample"].greeting

    @router.get("/hello")
    def hello(principal: Principal = Depends(ctx.require("sample.read"))) -> dict[str, str]:
        return {"greeting": greeting, "tenant": principal.tenant}

    return router
