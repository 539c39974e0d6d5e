"""Run identity and cohort: the one definition of when two runs are the same run, and which runs pool.

A run's *identity* is every setting that changes its numbers or the contents of its record: the recipe
(spec hash: every value it resolves to), the harness's results version, protocol, seed, budget, data,
device type, precision, layout, augmentation path, compile, deterministic kernels, test tracking,
robustness scoring and a given teacher checkpoint. Two runs with one identity are the same run: the
record and checkpoints are named by it, and a finished record is
reused only for exactly it. A run's *cohort* is the part of its identity that decides what its accuracy
estimates: runs of one cohort (differing in seed, or in settings that only change kernels' arithmetic or
what else the record holds) are pooled into one mean, one sample per seed; nothing else is ever pooled,
compared or judged together. The budget in a cohort is what was run (epochs and images, and whether
that is the spec's own), never the profile's name. Table, compare, plot and sweep all read these two
definitions from here.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

# The version of what a run computes for an unchanged spec: bump it with any change to the harness that
# changes a run's numbers (training, selection, scoring). A record of another version is stale, never pooled.
# 2: the spec hash covers defaults (issue 19); records before it carry no version (read as 1).
RESULTS_VERSION = 2

# The fields of an identity that a cohort keeps: recipe, harness version, budget as run, data, precision
# and teacher. The profile's name is not among them: `--profile short --epochs 70` on all data is full.
COHORT_FIELDS = (
    "report",
    "variant",
    "spec_hash",
    "results_version",
    "protocol",
    "full_budget",
    "epochs",
    "train_images",
    "val_images",
    "test_images",
    "data_sha256",
    "precision",
    "teacher",
)


@dataclass(frozen=True)
class Identity:
    """Every setting that makes a run what it is; see the module docstring."""

    report: str
    variant: str
    spec_hash: str
    protocol: str  # own, or the declared `[protocol] name` of the protocol that ran
    seed: int
    profile: str  # the budget's name, for file names only: the cohort keeps the budget itself
    epochs: int
    train_images: int | None  # None: every image left after the validation split
    val_images: int | None  # None: the whole validation split
    test_images: int | None  # None: all 10,000
    full_budget: bool  # the spec's own epochs on all its images (train.request.Budget.is_full)
    data_sha256: str
    device_type: str  # cpu, cuda or mps
    precision: str  # fp32 or bf16 (autocast)
    channels_last: bool
    augment: str  # batched or torchvision
    workers: int  # DataLoader workers: they draw the torchvision path's randomness (0 for batched)
    compile: bool
    deterministic: bool
    track_test: bool
    robustness: bool
    teacher: str | None  # sha256 of a given teacher checkpoint; None: the teacher's own run
    results_version: int | None = RESULTS_VERSION  # None: a record older than the versions

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def run_id(self) -> str:
        return _digest(self.as_dict())

    @property
    def cohort(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in COHORT_FIELDS}

    @property
    def stem(self) -> str:
        """A readable file name made unique by the run id, e.g. `common-smoke-e5-n4096-seed0-1a2b3c4d5e6f`."""
        label = file_label(self.protocol, self.profile, self.epochs, self.train_images)
        return f"{label}-seed{self.seed}-{self.run_id[:12]}"

    def record_path(self, results: Path) -> Path:
        return results / self.report / self.variant / f"{self.stem}.json"

    def checkpoint_dir(self, results: Path) -> Path:
        return results / "checkpoints" / self.report / self.variant / self.stem

    def differences(self, other: dict[str, Any]) -> list[str]:
        """The fields (as `name: ours vs theirs`) in which another identity differs from this one."""
        return [
            f"{f.name}: {getattr(self, f.name)!r} vs {other.get(f.name)!r}"
            for f in fields(self)
            if other.get(f.name) != getattr(self, f.name)
        ]


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def cohort_id(cohort: dict[str, Any]) -> str:
    return _digest(cohort)


def comparison_key(cohort: dict[str, Any]) -> tuple[Any, ...]:
    """What two *different* entries must share to be compared: budget, data, precision, harness version.

    At the full budget (the spec's own epochs on all images, whatever the profile was called) each recipe
    runs its own epochs, so epochs are not compared; below it, the budgets must be identical.
    """
    full = bool(cohort.get("full_budget"))
    below = (
        None
        if full
        else (cohort["epochs"], cohort["train_images"], cohort.get("val_images"), cohort.get("test_images"))
    )
    return (full, below, cohort["data_sha256"], cohort["precision"], cohort.get("results_version"))


def budget_text(cohort: dict[str, Any]) -> str:
    """A cohort's training budget by what was run, e.g. `full (70 ep, all img)` or `reduced (5 ep, 4,096 img)`."""
    images = f"{cohort['train_images']:,} img" if cohort.get("train_images") else "all img"
    precision = "" if cohort.get("precision", "fp32") == "fp32" else f", {cohort['precision']}"
    return f"{budget_name(cohort)} ({cohort['epochs']} ep, {images}{precision})"


def file_label(protocol: str, budget: str, epochs: int, train_images: int | None) -> str:
    """The protocol and budget part of a file name, e.g. `common-smoke-e5-n4096`: records, checkpoints
    and plots name their files with it."""
    prefix = "" if protocol == "own" else f"{protocol}-"
    return f"{prefix}{budget}-e{epochs}-n{train_images or 'all'}"


def budget_name(cohort: dict[str, Any]) -> str:
    """`full` for the spec's own epochs on all images, else `reduced`: never the profile's label."""
    return "full" if cohort.get("full_budget") else "reduced"
