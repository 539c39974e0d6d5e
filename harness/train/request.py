"""A run request and everything resolved from it, once, before the run starts.

`RunOptions` is what a user asks for on the command line (or a sweep); `make_budget`/`compress` turn a
profile into the recipe's epochs and images; `identify` resolves every `auto` into the run's `Identity`;
`prepare` puts all of it, with the data, its splits and the device settings, into one frozen `RunContext`.
The run, the sweep's skip check and the tests all use `identify`, so that two requests that would run the
same way are one run and any difference makes another.

Budgets: the spec as written (full), or compressed in time and data for CPU runs and tests. A compressed
budget scales every epoch count of the recipe by one factor (epochs, schedule horizons, warm-up, step
sizes, phases), so that a 30-of-200-epoch cosine stays cut short in the same proportion. Only a full
budget on official CIFAR-10 counts as a reproduction of a claim.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.common.defaults import Profile
from harness.common.device import Runtime, cpu_has_bf16_units, resolve_device
from harness.common.errors import HarnessError, RunError
from harness.data.cifar10 import SPLIT_SIZES, Cifar10, Splits, load_cifar10, make_splits
from harness.results.identity import Identity
from harness.spec import TEST_SELECTION, Phase, Recipe, Spec, Variant, resolve_protocol, with_protocol
from harness.spec.sections import NAME_MAX, shorten
from harness.train import checkpoint

SHORT_FRACTION = 0.1  # short: a tenth of the epochs on all the data
SMOKE_TRAIN_IMAGES = 1024  # smoke: a small subset, and one epoch per training phase: proves the code path
# demo: enough to learn visibly in minutes on a laptop CPU (resnet10-onecycle: 56.6% on the JPEG copy in
# 5m 23s on 2 cores at bf16, measured 2026-11-29), and never a reproduction
DEMO_TRAIN_IMAGES = 12_288
DEMO_EPOCHS = 3
DEMO_VAL_IMAGES = 1_024
# a subset's validation split (N/4) and test set (N): at least this many images. More would not make a smoke
# run's figure mean more, and scoring 256 took a ResNet-50-style teacher longer than training on 64 images.
SUBSET_MIN_SCORED = 64
TEST_IMAGES = SPLIT_SIZES["test"]


class BudgetError(HarnessError):
    """A budget that cannot be applied to a recipe (e.g. more images than the dataset has)."""


@dataclass(frozen=True)
class Budget:
    """How much of a recipe a run does: its epochs and how many training, validation and test images."""

    profile: Profile
    epochs: int
    spec_epochs: int
    train_images: int | None  # None: every image left after the validation split
    val_images: int | None  # None: the whole validation split
    test_images: int | None  # None: all 10,000

    @property
    def time_scale(self) -> float:
        return self.epochs / self.spec_epochs

    @property
    def is_full(self) -> bool:
        """The recipe's own epochs on all the data: the only budget that can reproduce a claim."""
        return self.epochs == self.spec_epochs and self.train_images is None and self.test_images is None

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "time_scale": self.time_scale, "is_full": self.is_full}


def make_budget(recipe: Recipe, profile: Profile, epochs: int | None = None, subset: int | None = None) -> Budget:
    """The budget a profile gives this recipe, with optional --epochs and --subset overrides."""
    spec_epochs = recipe.train.epochs
    at_least = max(1, len(recipe.train.phases))
    if profile == "full":
        default_epochs, train = spec_epochs, None
    elif profile == "short":
        default_epochs, train = max(at_least, math.ceil(spec_epochs * SHORT_FRACTION)), None
    elif profile == "demo":
        default_epochs, train = max(at_least, min(DEMO_EPOCHS, spec_epochs)), DEMO_TRAIN_IMAGES
    else:
        default_epochs, train = at_least, SMOKE_TRAIN_IMAGES
    if epochs is not None and epochs < 1:
        raise BudgetError(f"--epochs must be at least 1, got {epochs}")
    if subset is not None and subset < 1:
        raise BudgetError(f"--subset must be at least 1, got {subset}")
    train = subset if subset is not None else train
    available = recipe.data.train_size
    if train is not None and train > available:
        raise BudgetError(f"--subset {train} exceeds the {available} training images left after the validation split")
    val = (
        None
        if train is None or recipe.data.val_size == 0
        else min(recipe.data.val_size, max(SUBSET_MIN_SCORED, train // 4))
    )
    test = None if train is None else min(TEST_IMAGES, max(SUBSET_MIN_SCORED, train))
    if profile == "demo":  # fewer validation images, every test image: the figure shown is the demo's point
        val = None if recipe.data.val_size == 0 else min(recipe.data.val_size, DEMO_VAL_IMAGES)
        test = None
    return Budget(profile, epochs or default_epochs, spec_epochs, train, val, test)


def compress(recipe: Recipe, budget: Budget) -> Recipe:
    """The recipe scaled to the budget; unchanged for the recipe's own epochs and data.

    Epoch counts (epochs, phases, epoch-stepped schedules) scale with the epochs; a batch-stepped
    schedule's horizon scales with the optimizer steps the budget actually takes, so that a OneCycle
    on a data subset still completes its cycle. Warm-ups keep their starting factor (schedule.scaled).
    """
    spec_steps = recipe.train.epochs * _steps_per_epoch(recipe.data.train_size, recipe.train.batch_size)
    steps = budget.epochs * _steps_per_epoch(budget.train_images or recipe.data.train_size, recipe.train.batch_size)
    if budget.epochs == recipe.train.epochs and steps == spec_steps:
        return recipe
    train = recipe.train
    phases = _scaled_phases(train.phases, budget.epochs)
    schedule = train.schedule.scaled(budget.time_scale, steps / spec_steps)
    update = {"epochs": budget.epochs, "schedule": schedule, "phases": phases}
    return recipe.model_copy(update={"train": train.model_copy(update=update)})


def _steps_per_epoch(images: int, batch_size: int) -> int:
    return math.ceil(images / batch_size)


def check_fits(budget: Budget, recipe: Recipe, train_count: int, test_count: int, source: str) -> None:
    """Raise BudgetError unless the data has the images the split and the budget take."""
    needed = recipe.data.val_size + (budget.train_images or 1)
    if train_count < needed:
        raise BudgetError(
            f"{source}: has {train_count:,} training images, but the validation split ({recipe.data.val_size:,}) "
            f"and the training set ({budget.train_images or 'at least 1'}) need {needed:,}"
        )
    if test_count < (budget.test_images or 1):
        raise BudgetError(f"{source}: has {test_count:,} test images, the budget tests on {budget.test_images:,}")


def _scaled_phases(phases: tuple[Phase, ...], epochs: int) -> tuple[Phase, ...]:
    """Phase lengths in proportion (largest remainder), each phase kept with at least one epoch."""
    if not phases:
        return phases
    total = sum(p.epochs for p in phases)
    if epochs < len(phases):
        raise BudgetError(f"{epochs} epochs cannot hold the recipe's {len(phases)} training phases")
    exact = [p.epochs * epochs / total for p in phases]
    sizes = [max(1, math.floor(x)) for x in exact]
    while sum(sizes) > epochs:
        i = max((i for i in range(len(sizes)) if sizes[i] > 1), key=lambda i: sizes[i] - exact[i])
        sizes[i] -= 1
    while sum(sizes) < epochs:
        i = max(range(len(sizes)), key=lambda i: exact[i] - sizes[i])
        sizes[i] += 1
    return tuple(p.model_copy(update={"epochs": n}) for p, n in zip(phases, sizes, strict=True))


@dataclass(frozen=True)
class RunOptions:
    """A run as asked for on the command line (or by a sweep); `None` and `auto` mean: decide."""

    seed: int = 0
    profile: Profile = "full"
    epochs: int | None = None
    subset: int | None = None
    data: str | None = None
    device: str = "auto"  # auto | cpu | cuda | mps
    resume: bool = False
    deterministic: bool = False
    workers: int = 0
    track_test: bool | None = None  # test scored every epoch; None: at the full budget, for test-chosen claims
    teacher_checkpoint: str | None = None
    protocol: str = "own"  # own, a protocol name beside the spec (common), or a protocol file
    precision: str = "auto"  # auto | fp32 | bf16
    channels_last: str = "auto"  # auto | on | off
    augment: str = "auto"  # auto (the spec's choice) | batched | torchvision
    compile: bool = False
    robustness: bool | None = None  # corrupted-test accuracy; None: only for full budgets

    @classmethod
    def from_arguments(cls, args: argparse.Namespace, **chosen: Any) -> RunOptions:
        """The options of `harness run` or `harness sweep`, from the arguments they share and those one adds."""
        shared = ("profile", "epochs", "subset", "data", "device", "precision", "track_test", "robustness")
        own = ("seed", "resume", "deterministic", "workers", "teacher_checkpoint", "protocol", "augment", "compile")
        values = {name: getattr(args, name) for name in shared + own if hasattr(args, name)}
        if hasattr(args, "channels_last"):
            values["channels_last"] = args.channels_last
        return cls(**{**values, **chosen})


def resolve_precision(recipe: Recipe, device_type: str, requested: str = "auto", profile: str = "full") -> str:
    """fp32 or bf16. auto: bf16 autocast on CUDA, and for a demo on a CPU with bf16 units (AVX-512 BF16,
    AMX), unless the spec forbids it; fp32 elsewhere. bf16 or fp32 force it."""
    if requested != "auto":
        return requested
    fast = device_type == "cuda" or (device_type == "cpu" and profile == "demo" and cpu_has_bf16_units())
    return "bf16" if fast and recipe.train.allow_bf16 else "fp32"


def resolve_layout(recipe: Recipe, device_type: str, requested: str = "auto") -> bool:
    """channels_last or not. auto: on CUDA and on the CPU, where oneDNN's convolutions run faster in it,
    unless the spec forbids it."""
    return requested == "on" or (requested == "auto" and recipe.train.allow_channels_last and device_type != "mps")


def resolve_augment(recipe: Recipe, requested: str = "auto") -> str:
    """batched or torchvision: --augment, else the spec's `pipeline`, else batched (every op has both forms)."""
    wanted = recipe.augment.pipeline if requested == "auto" else requested
    return "batched" if wanted == "auto" else wanted


def given_teacher(spec: Spec, variant: Variant, options: RunOptions) -> Path | None:
    """The teacher checkpoint a run is told to load (--teacher-checkpoint, or the spec's), if any."""
    distill = variant.recipe.train.distill
    if distill is None:
        return None
    if options.teacher_checkpoint is not None:
        return Path(options.teacher_checkpoint)
    return spec.path.parent.parent / distill.teacher_checkpoint if distill.teacher_checkpoint else None


def identify(
    spec: Spec, variant: Variant, options: RunOptions, budget: Budget, data_sha256: str, device_type: str
) -> Identity:
    """The identity of a run of `variant` (after its protocol) at `budget` on data and a device type."""
    recipe = variant.recipe
    protocol = variant.protocol
    tested_claims = [c for c in spec.claims_for(variant.name) if c.selection in TEST_SELECTION]
    track_test = options.track_test
    if track_test is None:  # the claim's own rule needs the test curve; only at the budget that can judge it
        track_test = budget.is_full and protocol == "own" and bool(tested_claims)
    augment = resolve_augment(recipe, options.augment)
    teacher = given_teacher(spec, variant, options)
    if teacher is not None and not teacher.is_file():
        raise RunError(f"teacher checkpoint {teacher}: no such checkpoint file")
    return Identity(
        report=spec.name,
        variant=variant.name,
        spec_hash=variant.spec_hash,
        protocol=protocol,
        seed=options.seed,
        profile=budget.profile,
        epochs=budget.epochs,
        train_images=budget.train_images,
        val_images=budget.val_images,
        test_images=budget.test_images,
        full_budget=budget.is_full,
        data_sha256=data_sha256,
        device_type=device_type,
        precision=resolve_precision(recipe, device_type, options.precision, budget.profile),
        channels_last=resolve_layout(recipe, device_type, options.channels_last),
        augment=augment,
        workers=options.workers if augment == "torchvision" else 0,
        compile=options.compile,
        deterministic=options.deterministic,
        track_test=track_test,
        robustness=budget.is_full if options.robustness is None else options.robustness,
        teacher=None if teacher is None else checkpoint.file_sha256(teacher),
    )


@dataclass(frozen=True)
class RunContext:
    """A run's spec, recipe, budget, data, identity and runtime; built by `prepare`, never changed."""

    spec: Spec
    variant: Variant  # after its protocol
    recipe: Recipe  # the variant's recipe compressed to the budget
    options: RunOptions
    budget: Budget
    data: Cifar10
    splits: Splits
    identity: Identity
    runtime: Runtime
    results: Path

    @property
    def record_path(self) -> Path:
        return self.identity.record_path(self.results)

    @property
    def checkpoint_dir(self) -> Path:
        return self.identity.checkpoint_dir(self.results)

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(uint8 NHWC images, labels) of the train, val or test split."""
        index = getattr(self.splits, name)
        if name == "test":
            return self.data.test_x[index], self.data.test_y[index]
        return self.data.train_x[index], self.data.train_y[index]


def prepare(spec: Spec, variant_name: str, options: RunOptions, results: Path) -> RunContext:
    """Resolve a request into a run: protocol, budget, data, device, identity. Writes nothing."""
    variant = with_protocol(spec, spec.variant(variant_name), resolve_protocol(spec, options.protocol))
    budget = make_budget(variant.recipe, options.profile, options.epochs, options.subset)
    recipe = compress(variant.recipe, budget)
    data = load_cifar10(options.data)
    check_fits(budget, recipe, len(data.train_x), len(data.test_x), data.label)
    device = resolve_device(options.device)
    identity = identify(spec, variant, options, budget, data.sha256, device.type)
    runtime = Runtime.for_device(device, identity.precision, identity.channels_last, identity.deterministic)
    splits = make_splits(data, recipe, budget)
    context = RunContext(spec, variant, recipe, options, budget, data, splits, identity, runtime, results)
    check_file_names(context)
    return context


NAME_MAX_BYTES = 255  # one file or folder name on ext4, XFS, APFS and NTFS
TEMPORARY_EXTRA = len("..XXXXXXXX.tmp")


def check_file_names(ctx: RunContext) -> None:
    """Raise RunError before anything is written if a file the run writes would have too long a name: a spec
    checks its own names (spec.sections.NAME_MAX), but a protocol file's name can still make one."""
    # each file is first written under a temporary name 14 bytes longer (common/files.py: `.NAME.XXXXXXXX.tmp`)
    for path in (ctx.record_path, ctx.checkpoint_dir / "epoch-0000.pt.sha256"):
        for part in path.relative_to(ctx.results).parts:
            if len(part.encode()) + TEMPORARY_EXTRA <= NAME_MAX_BYTES:
                continue
            names = {"report": ctx.spec.name, "variant": ctx.variant.name, "protocol": ctx.identity.protocol}
            what = max((n for n in names if names[n] in part), key=lambda n: len(names[n]), default="variant")
            raise RunError(
                f"{ctx.spec.name}/{shorten(ctx.variant.name)}: a file of this run would be named "
                f"{shorten(part, 40)!r} ({len(part.encode())} bytes, {TEMPORARY_EXTRA} more while it is written), more than "
                f"the {NAME_MAX_BYTES} bytes a file name can have: shorten the {what} name ({len(names[what])} characters; at most {NAME_MAX})"
            )
