"""The on-disk cache ($HARNESS_CACHE, default ~/.cache/harness): decoded data sets, and small JSON tables of
what is slow to measure (model sizes, latencies), read without loading PyTorch."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from harness.common.errors import HarnessError
from harness.common.files import atomic_write_json


class CacheError(HarnessError):
    """A cache location that cannot be a folder; the message names the variable and what to do."""


def cache_dir() -> Path:
    """$HARNESS_CACHE, else ~/.cache/harness; refused up front where it is (or lies under) a file, which
    would otherwise fail only when something is written there (after an 18 s decode)."""
    given = os.environ.get("HARNESS_CACHE")
    path = Path(given) if given else Path.home() / ".cache" / "harness"
    blocker = next((p for p in (path, *path.parents) if p.exists()), None)
    if blocker is None or blocker.is_dir():
        return path
    what = f"HARNESS_CACHE={given}" if given else f"{path} (the default cache)"
    if blocker == path:
        todo = "point it at a folder (or unset it)" if given else "remove it, or set HARNESS_CACHE to a folder"
        raise CacheError(f"{what} is a file, not a folder: {todo}")
    raise CacheError(f"{what}: {blocker} is a file, so no folder can be made under it: point HARNESS_CACHE at a folder")


def read_table(name: str) -> dict[str, Any]:
    """The JSON table `name` (e.g. sizes.json); empty when absent or unreadable (it is only a cache)."""
    try:
        table = json.loads((cache_dir() / name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return table if isinstance(table, dict) else {}


def store_in_table(name: str, key: str, value: Any) -> None:
    """Add one entry to a JSON table, written atomically (a reader never sees half a file)."""
    atomic_write_json(cache_dir() / name, {**read_table(name), key: value})
