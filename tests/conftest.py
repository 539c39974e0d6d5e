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


JPEG_ARCHIVE = REPO.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"


@pytest.fixture(scope="session")
def jpeg_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real-image CIFAR-10 copy beside the project, decoded once per session into a private cache."""
    assert JPEG_ARCHIVE.exists(), f"the tests need {JPEG_ARCHIVE} (see ../shared/README.md)"
    import os

    os.environ["HARNESS_CACHE"] = str(tmp_path_factory.mktemp("harness-cache"))
    from harness.data import load_cifar10

    load_cifar10(JPEG_ARCHIVE)  # decode now, so that tests time their own work only
    return JPEG_ARCHIVE
