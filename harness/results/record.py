"""Result records: what a run produced, the record made of it, and reading and writing records.

One JSON file per run under results/, each carrying its own provenance. A record is named by its run's
identity (results/identity.py): re-running a changed spec, another budget, other data or any other option
that changes the numbers never overwrites old results, nor is mistaken for them.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.common.device import device_name
from harness.common.environment import git_state, versions
from harness.common.files import atomic_write_json
from harness.common.lazy import lazy
from harness.measure.size import size_of
from harness.results.identity import COHORT_FIELDS, RESULTS_VERSION, Identity
from harness.results.validate import RULE_EPOCHS, newer_schema, refusal
from harness.spec import content_hash

torch = lazy("torch")  # loaded only to make a record: reading records and tables stays free of it

if TYPE_CHECKING:
    from harness.train.request import RunContext


SCHEMA = "harness.result/3"  # 3: epochs counted from 1, as everything a person reads counts them
READABLE_SCHEMAS = ("harness.result/1", "harness.result/2", SCHEMA)  # 1 lacks `identity`; 1 and 2 count epochs from 0
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
    read_from: str = field(default="", compare=False)  # the file it was read from (record_path: where it was written)

    @property
    def cohort(self) -> dict[str, Any]:
        """The part of the identity that decides which runs pool (identity.COHORT_FIELDS), derived on
        reading so that a record never carries a cohort of an older definition."""
        return {name: self.identity.get(name) for name in COHORT_FIELDS}

    @property
    def stale(self) -> bool:
        """Made by older harness code (a newer one's record is refused on reading): shown, never pooled."""
        return self.identity.get("results_version") != RESULTS_VERSION

    def to_json(self) -> dict[str, Any]:
        """The record as written (its cohort included, for readers of the JSON)."""
        written = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("origin", "read_from")}
        return {**written, "cohort": self.cohort}

    @classmethod
    def from_json(cls, data: dict[str, Any], origin: str = "", read_from: str = "") -> Record:
        """A record as written, or a schema-1 record with its identity and per-rule figures derived."""
        known = {f.name for f in fields(cls)} - {"origin", "read_from"}
        values = {k: v for k, v in data.items() if k in known}
        if data.get("schema") == READABLE_SCHEMAS[0]:
            values = {**_upgrade(data), **values}  # derived only where the record is silent
        if data.get("schema") != SCHEMA:
            values = {**values, **counted_from_one(values), "schema": SCHEMA}
        return cls(**values, origin=origin, read_from=read_from)


def counted_from_one(values: dict[str, Any]) -> dict[str, Any]:
    """The epoch numbers of a record's fields counted from 1 (the training loop counts from 0): its history,
    the selected epoch, each rule's epoch and where it diverged."""
    out: dict[str, Any] = {}
    if values.get("history"):
        out["history"] = [{**h, "epoch": h["epoch"] + 1} for h in values["history"]]
    if values.get("selected_epoch") is not None:
        out["selected_epoch"] = values["selected_epoch"] + 1
    if values.get("test_acc_by_rule"):
        out["test_acc_by_rule"] = {
            key: value + 1 if key in RULE_EPOCHS and value is not None else value
            for key, value in values["test_acc_by_rule"].items()
        }
    if (values.get("diverged_at") or {}).get("epoch") is not None:
        out["diverged_at"] = {**values["diverged_at"], "epoch": values["diverged_at"]["epoch"] + 1}
    return out


def _upgrade(data: dict[str, Any]) -> dict[str, Any]:
    """Schema 1: the identity from the record's other fields, and the per-rule test figures."""
    identity = _legacy_identity(data)
    rule = SELECT_RULE.get(data.get("selection", "last"), "last-epoch")
    by_rule: dict[str, Any] = {"last-epoch": None, "best-val": None, rule: data.get("test_acc")}
    by_rule["best-epoch-test"] = (data.get("report_rule") or {}).get("value")
    return {
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
    return base64.b64encode(np.packbits(np.asarray(mask, dtype=bool)).tobytes()).decode("ascii")


def unpack_mask(text: str, length: int) -> Any:
    """The boolean mask `pack_mask` wrote, of `length` images."""
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
            if why := newer_schema(data, SCHEMA):
                problems.append(f"{path}: skipped, {why}")
            continue  # not a result record (e.g. a sweep summary)
        missing = [key for key in REQUIRED if key not in data]
        if why := (f"record lacks {', '.join(missing)}" if missing else refusal(data)):
            problems.append(f"{path}: skipped, {why}")  # a newer harness's, or a figure no run produces
            continue
        try:
            records.append(Record.from_json(data, origin=str(directory), read_from=str(path)))
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
    if data.get("identity") != identity.as_dict() or refusal(data):  # refused (a figure no run produces): run again
        return None
    return Record.from_json(data, origin=str(results))


def write_record(record: Record) -> None:
    """Write a record atomically where its path says."""
    atomic_write_json(Path(record.record_path), record.to_json())


@dataclass(frozen=True)
class Trained:
    """The epoch loop's result: every epoch's figures, and how it ended."""

    history: list[dict[str, Any]]
    best: dict[str, Any] | None  # the best validation epoch: {"epoch", "val_acc", "model"}
    wall_time_s: float
    diverged_at: dict[str, Any] | None = None  # epoch, step and loss where the loss stopped being finite

    @property
    def status(self) -> str:
        return "diverged" if self.diverged_at else "complete"


@dataclass(frozen=True)
class Tested:
    """The test figures of a finished run (all None for a diverged one)."""

    test_acc: float | None = None  # the clean figure: the model eval.select names
    test_acc_by_rule: dict[str, Any] | None = None
    selected_epoch: int | None = None
    robustness: dict[str, Any] | None = None
    correct: dict[str, np.ndarray] | None = None  # rule -> which test images its model got right


def make_record(ctx: RunContext, trained: Trained, tested: Tested, teacher: dict[str, Any] | None) -> Record:
    """The result record: what ran, on what, with which outcome, and everything needed to redo it."""
    recipe, budget, data, splits, runtime = ctx.recipe, ctx.budget, ctx.data, ctx.splits, ctx.runtime
    history = trained.history
    selected = (
        tested.selected_epoch if tested.selected_epoch is not None else (history[-1]["epoch"] if history else None)
    )
    throughput = [h["train_images_per_s"] for h in history]
    size = size_of(recipe.model)
    record = Record(
        report=ctx.spec.name,
        report_id=ctx.spec.report.id,
        variant=ctx.variant.name,
        seed=ctx.identity.seed,
        profile=budget.profile,
        status=trained.status,
        protocol=ctx.identity.protocol,
        identity=ctx.identity.as_dict(),
        run_id=ctx.identity.run_id,
        diverged_at=trained.diverged_at,
        is_reproduction=trained.status == "complete"
        and budget.is_full
        and data.official
        and ctx.identity.protocol == "own",
        test_acc=tested.test_acc,
        val_acc=next((h["val_acc"] for h in history if h["epoch"] == selected), None),
        selected_epoch=selected,
        selection=recipe.eval.select,
        test_acc_by_rule=tested.test_acc_by_rule or {},
        test_correct={rule: pack_mask(mask) for rule, mask in (tested.correct or {}).items()},
        robustness=tested.robustness,
        budget={
            **budget.as_dict(),
            "train_images": len(splits.train),
            "val_images": len(splits.val),
            "test_images": len(splits.test),
            "batch_size": recipe.train.batch_size,
        },
        data_source=data.label,
        data={"source": data.source, "official": data.official, "sha256": data.sha256},
        spec_file=str(ctx.spec.path),
        spec_hash=ctx.variant.spec_hash,
        model_hash=content_hash(recipe.model.model_dump(mode="json", exclude_defaults=True)),
        recipe=recipe.model_dump(mode="json"),
        deviations=deviations(ctx),
        teacher=teacher,
        params=size.params,
        macs=size.macs,
        augment_pipeline=ctx.identity.augment,
        device={
            "type": runtime.device.type,
            "name": device_name(runtime.device),
            "threads": torch.get_num_threads(),
            "autocast": None if runtime.autocast is None else str(runtime.autocast).removeprefix("torch."),
            "channels_last": runtime.channels_last,
            "deterministic": runtime.deterministic,
            "workers": ctx.identity.workers,
        },
        versions=versions(),
        git=git_state(Path(__file__).parent),
        launcher=launcher(),
        wall_time_s=trained.wall_time_s,
        device_hours=trained.wall_time_s / 3600,
        train_images_per_s=float(np.median(throughput)) if throughput else None,
        finished_at=datetime.now(UTC).isoformat(timespec="seconds"),
        record_path=str(ctx.record_path),
        checkpoint_dir=str(ctx.checkpoint_dir),
        history=history,
    )
    return replace(record, **counted_from_one(record.to_json()))


SLURM_VARIABLES = {  # what a Slurm job says of itself, kept in the record's provenance
    "job_id": "SLURM_JOB_ID",
    "array_job_id": "SLURM_ARRAY_JOB_ID",
    "array_task_id": "SLURM_ARRAY_TASK_ID",
    "restarts": "SLURM_RESTART_COUNT",
    "node": "SLURMD_NODENAME",
    "partition": "SLURM_JOB_PARTITION",
}


def launcher() -> dict[str, Any]:
    """How this run was started: a Slurm job (its ids and restarts), a local sweep's job, or a command."""
    if "SLURM_JOB_ID" in os.environ:
        return {"by": "slurm", **{k: os.environ[v] for k, v in SLURM_VARIABLES.items() if v in os.environ}}
    if "SUBMITIT_LOCAL_JOB_ID" in os.environ:
        return {"by": "local sweep", "job_id": os.environ["SUBMITIT_LOCAL_JOB_ID"]}
    return {"by": "harness run"}


def deviations(ctx: RunContext) -> list[str]:
    """The variant's deviations from the report, then the budget's, the data's and the runtime's."""
    budget, splits = ctx.budget, ctx.splits
    found = [f"{d.key}: {d.note}" for d in ctx.variant.deviations]
    if not budget.is_full:
        found.append(
            f"budget '{budget.profile}': {budget.epochs} of {budget.spec_epochs} epochs"
            f" (schedules compressed x{budget.time_scale:.3g}), {len(splits.train)} training images"
        )
    if not ctx.data.official:
        found.append(f"data: {ctx.data.label}")
    found += ctx.runtime.deviations()
    if ctx.identity.augment == "batched":
        found.append(f"augmentation: batched on {ctx.runtime.device.type}, same distributions as torchvision")
    else:
        found.append("augmentation: per-sample torchvision pipeline")
    return found + (["torch.compile"] if ctx.identity.compile else [])
