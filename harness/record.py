"""Result records: one JSON file per run under results/, each carrying its own provenance."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SCHEMA = "harness.result/1"
REQUIRED = ("schema", "report", "variant", "seed", "profile")


def load_records(directory: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Every readable result record under `directory`, and one line for each file that is not."""
    records, problems = [], []
    if not directory.is_dir():
        return records, problems
    for path in sorted(directory.rglob("*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            problems.append(f"{path}: skipped, not a readable JSON record ({error})")
            continue
        if not isinstance(record, dict) or record.get("schema") != SCHEMA:
            continue  # not a result record (e.g. a measurement or a sweep summary)
        missing = [key for key in REQUIRED if key not in record]
        if missing:
            problems.append(f"{path}: skipped, record lacks {', '.join(missing)}")
            continue
        records.append(record)
    return records, problems
