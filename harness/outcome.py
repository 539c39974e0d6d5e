"""What a run produced: the trained history, the test figures, and the record made of them."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from harness.record import Record, git_state, pack_mask, versions
from harness.runtime import device_name
from harness.size import size_of
from harness.spec import content_hash

if TYPE_CHECKING:
    from harness.context import RunContext


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
    return Record(
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
