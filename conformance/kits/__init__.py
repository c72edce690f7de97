"""The kits, by name. Each module defines one ``KIT`` (``conformance.kit.Kit``)."""

from __future__ import annotations

from importlib import import_module

from ..kit import Kit

#: kit name -> module under conformance.kits
MODULES: dict[str, str] = {
    "oneroster-rostering-1.2": "oneroster_rostering",
    "oneroster-gradebook-1.2": "oneroster_gradebook",
    "oneroster-csv-1.2": "oneroster_csv",
    "lti-1.3-tool": "lti_tool",
    "lti-1.3-platform": "lti_platform",
    "xapi-lrs": "xapi_lrs",
    "case-1.0": "case",
}


def kits() -> dict[str, Kit]:
    """Every kit, loaded (a kit module imports only httpx, the standard library and conformance)."""
    return {name: import_module(f"{__name__}.{module}").KIT for name, module in MODULES.items()}
