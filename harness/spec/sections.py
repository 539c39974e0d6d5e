"""The training-facing sections of a spec: what a recipe is, shared by report specs and protocol files.

A recipe is model + data + augment + train + eval; a protocol file (reproductions/common.toml) has the
same sections but the model. Registries turn names into section types: `arch`, `op`, `name`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal, Union

from pydantic import Field

from harness.common.schema import Optional, Section
from harness.data.augment import OPS
from harness.data.cifar10 import CLASSES, IMAGE_SIZE, SPLIT_SIZES
from harness.models import MODELS
from harness.train.optim import OPTIMIZERS, SCHEDULES


def _dispatch(sections: list[type[Section]], tag: str) -> Any:
    """A union of a registry's sections, told apart by the `tag` key (e.g. `name = "sgd"`)."""
    if len(sections) == 1:
        return sections[0]
    return Annotated[Union[tuple(sections)], Field(discriminator=tag)]  # noqa: UP007 - a runtime tuple


ModelSection = _dispatch([entry.config for _, entry in MODELS.items()], "arch")
OpSection = _dispatch([op for _, op in OPS.items()], "op")
OptimizerSection = _dispatch([section for _, section in OPTIMIZERS.items()], "name")
ScheduleSection = _dispatch([section for _, section in SCHEDULES.items()], "name")

NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]*$"
# Report, variant (grid cells included) and protocol names become folder and file names; at this length
# the longest file name the harness builds, a learning curve's `curves_REPORT_VARIANT_PROTOCOL-reduced-
# e100000-n50000-bf16-HASH.png`, stays within the 255 bytes a file name can have (ext4, XFS, APFS, NTFS).
NAME_MAX = 64


def long_name(name: str, what: str) -> str | None:
    """The problem with a name that becomes a file or folder name, if it is too long; None if it fits."""
    if len(name.encode()) <= NAME_MAX:
        return None
    return (
        f"{shorten(name)!r} is {len(name)} characters long; a {what} becomes a folder and file name, "
        f"so it has at most {NAME_MAX}: shorten it"
    )


def shorten(name: str, keep: int = 24) -> str:
    """A name short enough to quote in a one-line message (a spec may hold one of any length)."""
    return name if len(name) <= keep + 3 else f"{name[:keep]}..."


MAX_EPOCHS = 100_000  # far beyond any recipe: a larger count is a typo, not a plan
MAX_BATCH = 65_536


class Data(Section):
    """`[data]`: the dataset, the held-out validation split and the normalisation constants."""

    dataset: Literal["cifar10"] = "cifar10"
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    val_size: int = Field(5000, ge=0, lt=SPLIT_SIZES["train"])
    val_seed: int = 0
    val_transform: Literal["eval", "train"] = "eval"

    @property
    def train_size(self) -> int:
        """Training images left after the validation split."""
        return SPLIT_SIZES["train"] - self.val_size

    def problems(self) -> list[tuple[str, str]]:
        return [("std", "every std must be > 0")] if min(self.std) <= 0 else []


class Augment(Section):
    """`[augment]`: the per-sample training ops, in order; normalisation follows them."""

    train: tuple[OpSection, ...] = ()  # type: ignore[valid-type]
    pipeline: Literal["auto", "batched", "torchvision"] = Field(
        "auto",
        description="batched on the device (the default when every op has a batched form), or "
        "torchvision's exact per-sample pipeline",
    )


class Lookahead(Section):
    """Lookahead (Zhang et al. 2019): every k steps the slow weights move alpha of the way to the fast ones.

    first_sync: when the slow weights are taken. "after-step-k" is timm's Lookahead (slow weights from
    the weights after step k, syncs after steps k, 2k, ...). "after-step-1" is the lookahead.py of
    Thakur et al. that report 000 and its teacher paste (slow weights from the weights after step 1, syncs after
    steps 1, 1 + k, 1 + 2k, ...).
    """

    k: int = Field(5, gt=0, le=1000)
    alpha: float = Field(0.5, gt=0, le=1)
    first_sync: Literal["after-step-k", "after-step-1"] = "after-step-k"


class Mix(Section):
    """Batch mixing: mixup, cutmix, or a per-batch choice between them (report 002)."""

    mode: Literal["mixup", "cutmix", "mixup_or_cutmix"]
    mixup_alpha: float = Field(1.0, gt=0)
    cutmix_alpha: float = Field(1.0, gt=0)
    switch_prob: float = Field(0.5, ge=0, le=1, description="P(cutmix) when mode is mixup_or_cutmix")
    prob: float = Field(1.0, ge=0, le=1, description="P(mixing) for each batch or epoch")
    per: Literal["batch", "epoch"] = "batch"


class Distill(Section):
    """Knowledge distillation: loss = kd_weight * [T^2] * KL(reduction) + ce_weight * CE."""

    teacher_variant: str = Field(pattern=NAME_PATTERN)
    teacher_spec: str | None = Field(None, description="another spec file, relative to this one")
    teacher_checkpoint: str | None = Field(None, description="weights to load instead of training")
    temperature: float = Field(gt=0)
    kd_weight: float = Field(ge=0)
    ce_weight: float = Field(ge=0)
    kl_reduction: Literal["mean", "batchmean"] = "batchmean"
    scale_by_t2: bool = True


class Phase(Section):
    name: str = Field(pattern=NAME_PATTERN)
    epochs: int = Field(gt=0, le=MAX_EPOCHS)
    mix: bool = True


class Train(Section):
    """`[train]`: optimizer, schedule and every regulariser of the recipe."""

    epochs: int = Field(gt=0, le=MAX_EPOCHS)
    batch_size: int = Field(gt=0, le=MAX_BATCH)
    optimizer: OptimizerSection  # type: ignore[valid-type]
    schedule: ScheduleSection  # type: ignore[valid-type]
    lookahead: Optional[Lookahead] = None
    grad_clip_value: Optional[float] = Field(None, gt=0)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    mix: Optional[Mix] = None
    distill: Optional[Distill] = None
    phases: tuple[Phase, ...] = ()
    allow_bf16: bool = Field(True, description="bf16 autocast on CUDA (recorded as a deviation)")
    allow_channels_last: bool = Field(True, description="channels_last on CUDA (recorded as a deviation)")

    def problems(self) -> list[tuple[str, str]]:
        found = [(f"schedule.{key}", msg) for key, msg in self.schedule.problems()]
        if self.phases:
            total = sum(p.epochs for p in self.phases)
            if total != self.epochs:
                found.append(("phases", f"phase epochs add up to {total}, but epochs is {self.epochs}"))
            names = [p.name for p in self.phases]
            if len(set(names)) != len(names):
                found.append(("phases", f"phase names must be unique, got {names}"))
        return found


class Eval(Section):
    """`[eval]`: how the harness picks the model it tests, and what the report itself validated on."""

    batch_size: int = Field(256, gt=0, le=MAX_BATCH)
    select: Literal["last", "best-val"] = "last"
    report_validation: Literal["test-set", "held-out", "held-out-augmented", "none"]


class TrainingSections(Section):
    """How a network is trained and tested: shared by a report's recipe and a protocol file."""

    data: Data
    augment: Augment = Augment()
    train: Train
    eval: Eval

    def problems(self) -> list[tuple[str, str]]:
        found = [(f"data.{k}", m) for k, m in self.data.problems()]
        found += [(f"train.{k}", m) for k, m in self.train.problems()]
        found += [(f"augment.train[{i}].{k}", m) for i, op in enumerate(self.augment.train) for k, m in op.problems()]
        if self.eval.select == "best-val" and self.data.val_size == 0:
            found.append(("eval.select", "best-val needs a validation split (data.val_size > 0)"))
        for i, op in enumerate(self.augment.train):  # the test images are not cropped: crops keep the size
            if getattr(op, "size", IMAGE_SIZE) != IMAGE_SIZE:
                found.append(
                    (f"augment.train[{i}].size", f"crops must keep the {IMAGE_SIZE}x{IMAGE_SIZE} size, got {op.size}")
                )
        total = getattr(self.train.schedule, "total_steps", None)  # PyTorch's OneCycle raises past its end
        steps = self.train.epochs * -(-self.data.train_size // self.train.batch_size)
        if total is not None and total < steps:
            found.append(("train.schedule.total_steps", f"{total} is fewer than the run's {steps} optimizer steps"))
        return found


class Recipe(TrainingSections):
    """Everything that decides a training run: the part of a variant that is hashed."""

    model: ModelSection  # type: ignore[valid-type]

    def problems(self) -> list[tuple[str, str]]:
        found = [(f"model.{k}", m) for k, m in self.model.problems()] + super().problems()
        # CIFAR-10 is 32x32 images of 10 classes: the model must take them.
        size = getattr(self.model, "input_size", IMAGE_SIZE)
        if size != IMAGE_SIZE:
            found.append(("model.input_size", f"CIFAR-10 images are {IMAGE_SIZE}x{IMAGE_SIZE}, got {size}"))
        if getattr(self.model, "num_classes", len(CLASSES)) < len(CLASSES):
            found.append(("model.num_classes", f"CIFAR-10 has {len(CLASSES)} classes, got {self.model.num_classes}"))
        return found


RECIPE_KEYS = tuple(Recipe.model_fields)


def recipe_hash(recipe: TrainingSections, *parts: Any) -> str:
    """The identity of a recipe: every value it resolves to, defaults included, so that changing a
    default changes the hash (and no record made under the old default is taken for the new recipe).
    `parts` are what else decides the run (a protocol's name, a teacher's hash); the model's code versions
    (a change to what the code computes for the same values) enter only where they apply."""
    versions = getattr(getattr(recipe, "model", None), "code_versions", tuple)()
    return content_hash([*parts, *versions, recipe.model_dump(mode="json")])


def content_hash(data: Any) -> str:
    """A short SHA-256 of JSON-able data (sorted keys): identifies a recipe, whatever its file says."""
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]
