"""Result records: one JSON file per run under results/, each carrying its own provenance.

A record is named by its run's identity (harness/identity.py): re-running a changed spec, another budget,
other data or any other option that changes the numbers never overwrites old results, nor is mistaken
for them.
"""

from __future__ import annotations

import base64
import json
import platform
import subprocess
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from harness.identity import COHORT_FIELDS, RESULTS_VERSION, Identity

SCHEMA = "harness.result/2"
READABLE_SCHEMAS = ("harness.result/1", SCHEMA)  # schema 1 records lack `identity`: derived on reading
SELECT_RULE = {"last": "last-epoch", "best-val": "best-val"}  # eval.select -> the rule whose figure is the clean one
REQUIRED = ("schema", "report", "variant", "seed", "profile", "status", "spec_hash")


@dataclass(frozen=True)
class Record:
    """One run's result and its provenance, as written to `<results>/<report>/<variant>/<stem>.json`."""

    report: str
    variant: str
    seed: int
    profile: str
    status: str  # complete or diverged
    spec_hash: str
    identity: dict[str, Any]  # every setting of the run (identity.Identity)
    run_id: str
    report_id: str = ""
    protocol: str = "own"
    diverged_at: dict[str, Any] | None = None
    is_reproduction: bool = False
    test_acc: float | None = None  # the clean figure: the model eval.select names
    val_acc: float | None = None
    selected_epoch: int | None = None
    selection: str = "last"
    test_acc_by_rule: dict[str, Any] = field(default_factory=dict)  # last-epoch, best-val, best-epoch-test
    # rule -> which test images (in the run's test order) its model got right, np.packbits in base64: the
    # paired (McNemar) comparison of two runs on the same test images
    test_correct: dict[str, str] = field(default_factory=dict)
    robustness: dict[str, Any] | None = None
    budget: dict[str, Any] = field(default_factory=dict)
    data_source: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    spec_file: str = ""
    model_hash: str = ""
    recipe: dict[str, Any] = field(default_factory=dict)
    deviations: list[str] = field(default_factory=list)
    teacher: dict[str, Any] | None = None
    params: int | None = None
    macs: int | None = None
    augment_pipeline: str = "batched"
    device: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, Any] = field(default_factory=dict)
    git: dict[str, Any] = field(default_factory=dict)
    launcher: dict[str, Any] = field(default_factory=dict)  # how it was started: command line, sweep, Slurm job
    wall_time_s: float | None = None
    device_hours: float | None = None
    train_images_per_s: float | None = None
    finished_at: str = ""
    record_path: str = ""
    checkpoint_dir: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)
    schema: str = SCHEMA
    origin: str = field(default="", compare=False)  # the results folder it was read from; never written

    @property
    def cohort(self) -> dict[str, Any]:
        """The part of the identity that decides which runs pool (identity.COHORT_FIELDS), derived on
        reading so that a record never carries a cohort of an older definition."""
        return {name: self.identity.get(name) for name in COHORT_FIELDS}

    @property
    def stale(self) -> bool:
        """Made by harness code whose results version differs from this one's: shown, never pooled."""
        return self.identity.get("results_version") != RESULTS_VERSION

    def to_json(self) -> dict[str, Any]:
        """The record as written (its cohort included, for readers of the JSON)."""
        written = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "origin"}
        return {**written, "cohort": self.cohort}

    @classmethod
    def from_json(cls, data: dict[str, Any], origin: str = "") -> Record:
        """A record as written, or a schema-1 record with its identity and per-rule figures derived."""
        known = {f.name for f in fields(cls)} - {"origin"}
        values = {k: v for k, v in data.items() if k in known}
        if data.get("schema") != SCHEMA:
            values = {**_upgrade(data), **values, "schema": SCHEMA}  # derived only where the record is silent
        return cls(**values, origin=origin)


def _upgrade(data: dict[str, Any]) -> dict[str, Any]:
    """Schema 1 -> 2: the identity from the record's other fields, and the per-rule test figures."""
    identity = _legacy_identity(data)
    rule = SELECT_RULE.get(data.get("selection", "last"), "last-epoch")
    by_rule: dict[str, Any] = {"last-epoch": None, "best-val": None, rule: data.get("test_acc")}
    by_rule["best-epoch-test"] = (data.get("report_rule") or {}).get("value")
    return {
        "schema": SCHEMA,
        "identity": identity,
        "run_id": Identity(**identity).run_id if set(identity) == set(Identity.__dataclass_fields__) else "",
        "test_acc_by_rule": by_rule,
    }


def _legacy_identity(record: dict[str, Any]) -> dict[str, Any]:
    budget, device, data = record.get("budget") or {}, record.get("device") or {}, record.get("data") or {}
    augment = record.get("augment_pipeline", "batched")
    teacher = record.get("teacher") or {}
    return {
        "report": record.get("report"),
        "variant": record.get("variant"),
        "spec_hash": record.get("spec_hash"),
        "protocol": record.get("protocol", "own"),
        "seed": record.get("seed"),
        "profile": record.get("profile"),
        "epochs": budget.get("epochs"),
        "train_images": budget.get("train_images"),
        "val_images": None,
        "test_images": None,
        "full_budget": bool(budget.get("is_full")),
        "data_sha256": data.get("sha256") or record.get("data_source"),
        "device_type": device.get("type"),
        "precision": "bf16" if device.get("autocast") == "bfloat16" else "fp32",
        "channels_last": bool(device.get("channels_last")),
        "augment": augment,
        "workers": device.get("workers", 0) if augment == "torchvision" else 0,
        "compile": "torch.compile" in (record.get("deviations") or []),
        "deterministic": bool(device.get("deterministic")),
        "track_test": any("test_acc_monitor" in h for h in record.get("history") or []),
        "robustness": record.get("robustness") is not None,
        "teacher": teacher.get("checkpoint") if teacher and "record" not in teacher else None,
        "results_version": None,  # older than the versions: stale
    }


def pack_mask(mask: Any) -> str:
    """A boolean mask as base64 of its packed bits (10,000 test images: 1,668 characters)."""
    import numpy as np

    return base64.b64encode(np.packbits(np.asarray(mask, dtype=bool)).tobytes()).decode("ascii")


def unpack_mask(text: str, length: int) -> Any:
    """The boolean mask `pack_mask` wrote, of `length` images."""
    import numpy as np

    return np.unpackbits(np.frombuffer(base64.b64decode(text), dtype=np.uint8), count=length).astype(bool)


def load_records(directory: Path) -> tuple[list[Record], list[str]]:
    """Every readable result record under `directory`, and one line for each file that is not."""
    records: list[Record] = []
    problems: list[str] = []
    if not directory.is_dir():
        return records, problems
    for path in sorted(directory.rglob("*.json")):
        if "checkpoints" in path.relative_to(directory).parts:
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            problems.append(f"{path}: skipped, not a readable JSON record ({error})")
            continue
        if not isinstance(data, dict) or data.get("schema") not in READABLE_SCHEMAS:
            continue  # not a result record (e.g. a sweep summary)
        missing = [key for key in REQUIRED if key not in data]
        if missing:
            problems.append(f"{path}: skipped, record lacks {', '.join(missing)}")
            continue
        try:
            records.append(Record.from_json(data, origin=str(directory)))
        except TypeError as error:
            problems.append(f"{path}: skipped, not a result record of this harness ({error})")
    return records, problems


def find_record(results: Path, identity: Identity) -> Record | None:
    """The finished record of exactly this run (the same identity), if there is one."""
    path = identity.record_path(results)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA or data.get("status") != "complete":
        return None
    if data.get("identity") != identity.as_dict():
        return None
    return Record.from_json(data, origin=str(results))


def write_record(record: Record) -> None:
    """Write a record atomically where its path says."""
    from harness.checkpoint import atomic_write_json

    atomic_write_json(Path(record.record_path), record.to_json())


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
