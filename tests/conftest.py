"""Shared paths and helpers for the test suite."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SPECS_DIR = REPO / "reproductions"
SPEC_FILES = sorted(SPECS_DIR.glob("*.toml"))


@pytest.fixture
def spec_copy(tmp_path: Path):
    """Write a spec text (by default a copy of a shipped spec, edited) into a temporary folder."""

    def write(text: str, name: str = "spec.toml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write
