"""Result records: one JSON file per run under results/, each carrying its own provenance.

A record is named by its run's identity (harness/identity.py): re-running a changed spec, another budget,
other data or any other option that changes the numbers never overwrites old results, nor is mistaken
for them.
"""

from __future__ import annotations

import json
import platform
import subprocess
from pathlib import Path
from typing import Any

from harness.identity import Identity

SCHEMA = "harness.result/2"
READABLE_SCHEMAS = ("harness.result/1", SCHEMA)  # schema 1 records lack `identity`: see identity.identity_of
REQUIRED = ("schema", "report", "variant", "seed", "profile", "status", "spec_hash")


def load_records(directory: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Every readable result record under `directory`, and one line for each file that is not."""
    records: list[dict[str, Any]] = []
    problems: list[str] = []
    if not directory.is_dir():
        return records, problems
    for path in sorted(directory.rglob("*.json")):
        if "checkpoints" in path.relative_to(directory).parts:
            continue
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            problems.append(f"{path}: skipped, not a readable JSON record ({error})")
            continue
        if not isinstance(record, dict) or record.get("schema") not in READABLE_SCHEMAS:
            continue  # not a result record (e.g. a sweep summary)
        missing = [key for key in REQUIRED if key not in record]
        if missing:
            problems.append(f"{path}: skipped, record lacks {', '.join(missing)}")
            continue
        record["_origin"] = str(directory)  # which folder it came from, shown by the table; never written back
        records.append(record)
    return records, problems


def find_record(results: Path, identity: Identity) -> dict[str, Any] | None:
    """The finished record of exactly this run (the same identity), if there is one."""
    path = identity.record_path(results)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(record, dict) or record.get("schema") != SCHEMA or record.get("status") != "complete":
        return None
    return record if record.get("identity") == identity.as_dict() else None


def git_state(start: Path) -> dict[str, Any]:
    """The commit the harness ran from and whether its tree had uncommitted changes."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=start, capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def versions() -> dict[str, Any]:
    import timm
    import torch
    import torchvision

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "timm": timm.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "platform": platform.platform(),
    }
