"""Packaging metadata (issue 21 item 13): the license as an SPDX expression (PEP 639), which
setuptools reads without the deprecation warning the old ``license = {text = ...}`` table
prints on every ``pip install``, and a build requirement recent enough to read it."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

PYPROJECT = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text(encoding="utf-8"))


def test_the_license_is_an_spdx_expression_string() -> None:
    assert PYPROJECT["project"]["license"] == "Apache-2.0"
    assert not any(c.startswith("License ::") for c in PYPROJECT["project"].get("classifiers", []))  # PEP 639: not both


def test_the_build_needs_a_setuptools_that_reads_spdx_expressions() -> None:
    """setuptools 77 is the first to take ``project.license`` as a string."""
    pins = [r for r in PYPROJECT["build-system"]["requires"] if r.startswith("setuptools")]
    assert len(pins) == 1
    found = re.fullmatch(r"setuptools>=(\d+)(?:\.\d+)*", pins[0])
    assert found and int(found.group(1)) >= 77, pins[0]
