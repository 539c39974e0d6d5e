"""The on-disk cache ($HARNESS_CACHE, default ~/.cache/harness): decoded data sets, and small JSON tables of
what is slow to measure (model sizes, latencies), read without loading PyTorch."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from harness.common.files import atomic_write_json


def cache_dir() -> Path:
    return Path(os.environ.get("HARNESS_CACHE", Path.home() / ".cache" / "harness"))


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
