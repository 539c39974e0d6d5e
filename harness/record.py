"""Result records: one JSON file per run under results/, each carrying its own provenance.

A run is identified by (report, variant, seed, profile and its overrides, spec hash, data hash): a
record is only ever written for that exact key, so re-running a changed spec, another budget or other
data never overwrites old results, nor is mistaken for them.
"""

from __future__ import annotations

import json
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = "harness.result/1"
REQUIRED = ("schema", "report", "variant", "seed", "profile", "status", "spec_hash")


@dataclass(frozen=True)
class RunKey:
    report: str
    variant: str
    seed: int
    profile: str
    spec_hash: str
    data_sha256: str
    protocol: str = "own"
    budget_tag: str = ""  # e.g. "-e5-n4096" when --epochs/--subset change the profile's budget

    @property
    def stem(self) -> str:
        prefix = "" if self.protocol == "own" else f"{self.protocol}-"
        profile = f"{self.profile}{self.budget_tag}"
        return f"{prefix}{profile}-seed{self.seed}-{self.spec_hash[:8]}-{self.data_sha256[:8]}"

    def record_path(self, results: Path) -> Path:
        return results / self.report / self.variant / f"{self.stem}.json"

    def checkpoint_dir(self, results: Path) -> Path:
        return results / "checkpoints" / self.report / self.variant / self.stem


def run_label(record: dict[str, Any]) -> str:
    """The protocol and budget part of a record's run key, e.g. `common-smoke-e5-n4096` or `full`."""
    name = Path(str(record.get("record_path", ""))).name
    if "-seed" in name:
        return name.split("-seed")[0]
    protocol = record.get("protocol", "own")
    return f"{'' if protocol == 'own' else protocol + '-'}{record['profile']}"


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
        if not isinstance(record, dict) or record.get("schema") != SCHEMA:
            continue  # not a result record (e.g. a sweep summary)
        missing = [key for key in REQUIRED if key not in record]
        if missing:
            problems.append(f"{path}: skipped, record lacks {', '.join(missing)}")
            continue
        records.append(record)
    return records, problems


def find_record(results: Path, key: RunKey) -> dict[str, Any] | None:
    """The finished record for exactly this run, if there is one."""
    path = key.record_path(results)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return record if record.get("schema") == SCHEMA and record.get("status") == "complete" else None


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
