"""What a user asks of a run (`RunOptions`), and its resolution into the run's `Identity`.

Every `auto` is resolved here, once: the run, the sweep's skip check and the tests all use `identify`,
so that two requests that would run the same way are one run and any difference makes another.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness import checkpoint
from harness.budget import Budget, Profile
from harness.errors import RunError
from harness.identity import Identity
from harness.runtime import cpu_has_bf16_units
from harness.spec import TEST_SELECTION, Recipe, Spec, Variant


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
    protocol = options.protocol if options.protocol in ("own", "common") else Path(options.protocol).stem
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
