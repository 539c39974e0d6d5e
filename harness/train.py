"""Training: one visible loop for every recipe, resumable, on any device, with an honest budget.

`run()` trains one (spec, variant, seed, budget) and returns its result record. Randomness is reseeded
from (seed, epoch) at the start of every epoch, so a run resumed from any checkpoint replays exactly
the data order, augmentation and mixing of an uninterrupted run. The test set is evaluated once, at the
end, on the model the spec selects (last epoch, or best validation accuracy); with `track_test` it is
also scored every epoch for the record, labelled as the report's rule, and never used to choose.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from harness import checkpoint, fastaug
from harness.audit import TEST_SELECTION
from harness.augment import torchvision_pipeline
from harness.budget import Budget, Profile, check_fits, compress, make_budget
from harness.data import AugmentedImages, Cifar10, load_cifar10, normalize, split_indices
from harness.identity import Identity
from harness.losses import Mixed, mix_batch, mixing_this_epoch, training_loss, unmixed
from harness.measure import device_name, full_recipe_estimate, probe_batch, probe_loss, size_of, step_flops
from harness.models import build_model, fold_batchnorm
from harness.record import SCHEMA, find_record, git_state, versions
from harness.robustness import corrupted_accuracy
from harness.spec import Recipe, Spec, Variant, content_hash, resolve_protocol, with_protocol

READBACK_CUDA = 10  # steps between loss read-backs on CUDA
PROBE_STEPS = 2  # timed training steps (after one warm-up) for the estimate
PROBE_BATCH = 32  # images per probe step: enough for a stable rate, cheap even for the teacher


class RunError(Exception):
    """A run that cannot start or continue; the message says why and what to do."""


@dataclass(frozen=True)
class RunOptions:
    seed: int = 0
    profile: Profile = "full"
    epochs: int | None = None
    subset: int | None = None
    data: str | None = None
    device: str = "auto"
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


class Events(Protocol):
    """How a run reports progress; the CLI shows it, tests pass `Silent`."""

    def message(self, text: str) -> None: ...

    def progress(self, total: int, description: str) -> contextlib.AbstractContextManager[Callable[..., None]]: ...


class Silent:
    def message(self, text: str) -> None:
        pass

    @contextlib.contextmanager
    def progress(self, total: int, description: str) -> Iterator[Callable[..., None]]:
        yield lambda n, **postfix: None


# ----------------------------------------------------------------------------------------------
# Set-up


def resolve_device(name: str) -> torch.device:
    """auto picks CUDA, then Apple's MPS, then the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RunError("--device cuda: no CUDA device is available (use --device auto or cpu)")
    if name not in ("cpu", "cuda", "mps"):
        raise RunError(f"--device {name}: expected auto, cpu, cuda or mps")
    return torch.device(name)


def seed_epoch(
    seed: int, epoch: int, device: torch.device
) -> tuple[np.random.Generator, torch.Generator, torch.Generator]:
    """Reseed every source of randomness from (seed, epoch).

    Returns the epoch's NumPy RNG (mixing coins and lambdas), a CPU generator (data order, mixing
    permutations) and a generator on the training device (the batched augmentations).
    """
    state = int(np.random.SeedSequence([seed, epoch]).generate_state(1, dtype=np.uint64)[0] % (2**63))
    random.seed(state)
    torch.manual_seed(state)
    aug_gen = torch.Generator(device=device).manual_seed(state ^ 0x5DEECE66D)
    return np.random.default_rng([seed, epoch, 1]), torch.Generator().manual_seed(state), aug_gen


def resolve_augment(recipe: Recipe, choice: str = "auto") -> str:
    """batched or torchvision: --augment, else the spec's choice, else batched when every op has a batched form."""
    wanted = recipe.augment.pipeline if choice == "auto" else choice
    if wanted == "auto":
        wanted = "batched" if fastaug.supported(recipe.augment.train) else "torchvision"
    return wanted


class TrainSource:
    """Training batches: the fast path (uint8 images resident on the device, batched augmentation) or
    the exact per-sample torchvision pipeline through a DataLoader, as the spec or --augment asks."""

    def __init__(
        self, images: np.ndarray, labels: np.ndarray, recipe: Recipe, choice: str, device: torch.device, workers: int
    ) -> None:
        wanted = resolve_augment(recipe, choice)
        self.kind, self.device, self.workers = wanted, device, workers
        if wanted == "batched":
            self.images = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().to(device)
            self.labels = torch.from_numpy(labels).to(device)
            self.pipeline = fastaug.BatchPipeline(recipe.augment.train, recipe.data.mean, recipe.data.std)
            self.description = (
                f"augmentation: batched on {device.type} (harness.fastaug), same distributions as torchvision"
            )
        else:
            self.transform = torchvision_pipeline(recipe.augment.train, recipe.data.mean, recipe.data.std)
            self.dataset = AugmentedImages(images, labels, self.transform)
            self.description = "augmentation: per-sample torchvision pipeline"

    def batches(
        self, batch_size: int, gen: torch.Generator, aug_gen: torch.Generator
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch in a random order (all images, the last batch possibly short, as DataLoader)."""
        if self.kind == "batched":
            order = torch.randperm(len(self.images), generator=gen).to(self.device, non_blocking=True)
            for start in range(0, len(order), batch_size):
                index = order[start : start + batch_size]
                yield self.pipeline(self.images[index], aug_gen), self.labels[index]
            return
        loader = DataLoader(
            self.dataset,
            batch_size=batch_size,
            shuffle=True,
            generator=gen,
            num_workers=self.workers,
            pin_memory=self.device.type == "cuda",
        )
        for x, y in loader:
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def augment(
        self, images: np.ndarray, labels: np.ndarray, batch_size: int, seed: int
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Images through the training transform in a fixed order, seeded (002's augmented validation)."""
        if self.kind == "batched":
            gen = torch.Generator(device=self.device).manual_seed(seed)
            for start in range(0, len(images), batch_size):
                x = (
                    torch.from_numpy(images[start : start + batch_size])
                    .permute(0, 3, 1, 2)
                    .contiguous()
                    .to(self.device)
                )
                yield self.pipeline(x, gen), torch.from_numpy(labels[start : start + batch_size]).to(self.device)
            return
        loader = DataLoader(
            AugmentedImages(images, labels, self.transform), batch_size=batch_size, num_workers=self.workers
        )
        with _forked_rng(seed):
            for x, y in loader:
                yield x.to(self.device), y.to(self.device)


def training_step(
    model: nn.Module,
    teacher: nn.Module | None,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    recipe: Recipe,
    precision: Precision,
    device: torch.device,
    x: torch.Tensor,
    y: torch.Tensor,
    mixing: bool,
    rng: np.random.Generator,
    gen: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, Mixed]:
    """One step of the recipe: mix, forward (and the teacher's), loss, backward, clip, step, schedule."""
    if precision.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    batch = mix_batch(x, y, recipe.train.mix, rng, gen) if mixing else unmixed(x, y)
    with precision.context(device):
        logits = model(batch.inputs)
        teacher_logits = None
        if teacher is not None:
            with torch.inference_mode():
                teacher_logits = teacher(batch.inputs).float()
            teacher_logits = teacher_logits.clone()  # an inference tensor cannot enter the autograd graph
        loss = training_loss(logits.float(), batch, recipe.train.label_smoothing, recipe.train.distill, teacher_logits)
    optimizer_step(model, optimizer, loss, recipe.train.grad_clip_value)
    if recipe.train.schedule.step == "batch":
        scheduler.step()
    return loss.detach(), logits.detach(), batch


@dataclass(frozen=True)
class Splits:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def subset_of(index: np.ndarray, count: int, seed: int) -> np.ndarray:
    """A fixed random subset, sorted (a random one because the arrays are ordered by class)."""
    return np.sort(np.random.default_rng(seed).permutation(index)[:count])


TEST_SUBSET_SEED = 2  # offset from the spec's val_seed; `harness eval --subset` uses it with val_seed 0


def make_splits(data: Cifar10, recipe: Recipe, budget: Budget) -> Splits:
    """The fixed validation split, then the budget's subsets (the same images for every seed)."""
    train, val = split_indices(len(data.train_x), recipe.data.val_size, recipe.data.val_seed)
    if budget.train_images is not None:
        train = subset_of(train, budget.train_images, recipe.data.val_seed + 1)
    if budget.val_images is not None:
        val = subset_of(val, budget.val_images, recipe.data.val_seed + 3)
    test = np.arange(len(data.test_x))
    if budget.test_images is not None:
        test = subset_of(test, budget.test_images, recipe.data.val_seed + TEST_SUBSET_SEED)
    return Splits(train, val, test)


def phase_at(recipe: Recipe, epoch: int) -> tuple[str, bool]:
    """(phase name, whether mixing is on) for a 0-based epoch."""
    end = 0
    for phase in recipe.train.phases:
        end += phase.epochs
        if epoch < end:
            return phase.name, phase.mix
    return "main", True


def build_optimizer(model: nn.Module, recipe: Recipe, fused: bool = False) -> torch.optim.Optimizer:
    optimizer = recipe.train.optimizer.build(model, fused)
    lookahead = recipe.train.lookahead
    if lookahead is not None:
        from timm.optim import Lookahead

        # timm's Lookahead syncs when its step count reaches a multiple of k, taking the slow weights at the
        # first sync; starting the count at k - 1 gives Thakur et al.'s rule (syncs after steps 1, 1 + k, ...).
        optimizer = Lookahead(optimizer, alpha=lookahead.alpha, k=lookahead.k)
        if lookahead.first_sync == "after-step-1":
            for group in optimizer.param_groups:
                group["lookahead_step"] = lookahead.k - 1
    return optimizer


def optimizer_step(model: nn.Module, optimizer: torch.optim.Optimizer, loss: torch.Tensor, clip: float | None) -> None:
    """Backward, clip every gradient element to [-clip, clip] (clip_grad_value_), step."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if clip is not None:
        nn.utils.clip_grad_value_(model.parameters(), clip)
    optimizer.step()


@dataclass
class Precision:
    autocast: torch.dtype | None
    channels_last: bool

    def context(self, device: torch.device) -> contextlib.AbstractContextManager[Any]:
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.autocast)


def resolve_precision(recipe: Recipe, device_type: str, requested: str = "auto") -> str:
    """fp32 or bf16. auto: bf16 autocast on CUDA unless the spec forbids it, fp32 elsewhere; bf16 or fp32
    force it (bf16 on the CPU uses its AVX-512 BF16 / AMX units)."""
    if requested == "auto":
        return "bf16" if device_type == "cuda" and recipe.train.allow_bf16 else "fp32"
    return requested


def resolve_layout(recipe: Recipe, device_type: str, requested: str = "auto") -> bool:
    """channels_last or not. auto: on CUDA and on the CPU, where oneDNN's convolutions run faster in it,
    unless the spec forbids it."""
    return requested == "on" or (requested == "auto" and recipe.train.allow_channels_last and device_type != "mps")


def choose_precision(
    recipe: Recipe, device: torch.device, requested: str = "auto", layout: str = "auto"
) -> tuple[Precision, list[str]]:
    """Autocast dtype and memory layout, and the deviations they are from the (fp32, NCHW) recipes."""
    autocast = torch.bfloat16 if resolve_precision(recipe, device.type, requested) == "bf16" else None
    channels_last = resolve_layout(recipe, device.type, layout)
    deviations = []
    if autocast is not None:
        deviations.append(f"precision: bf16 autocast on {device.type} (the recipes trained in fp32)")
    if channels_last:
        deviations.append("memory format: channels_last")
    return Precision(autocast, channels_last), deviations


@dataclass(frozen=True)
class Context:
    """Everything fixed for the length of one run."""

    spec: Spec
    variant: Variant
    recipe: Recipe  # the variant's recipe compressed to the budget
    options: RunOptions
    budget: Budget
    data: Cifar10
    splits: Splits
    identity: Identity
    record_path: Path
    ckpt_dir: Path
    device: torch.device
    precision: Precision
    runtime_deviations: tuple[str, ...]
    source_kind: str  # batched or torchvision


@dataclass
class Outcome:
    history: list[dict[str, Any]]
    status: str = "complete"
    diverged_at: dict[str, Any] | None = None
    selected_epoch: int | None = None
    test_acc: float | None = None
    test_acc_by_rule: dict[str, Any] | None = None
    robustness: dict[str, Any] | None = None
    wall_time_s: float = 0.0


# ----------------------------------------------------------------------------------------------
# Evaluation


def evaluate(
    model: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    recipe: Recipe,
    device: torch.device,
    precision: Precision,
) -> float:
    """Top-1 accuracy (%) over every image, in eval mode, with the recipe's test transform."""
    return evaluate_arrays(
        model, images, labels, recipe.data.mean, recipe.data.std, recipe.eval.batch_size, device, precision
    )


@torch.no_grad()
def evaluate_arrays(
    model: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    batch_size: int,
    device: torch.device,
    precision: Precision,
) -> float:
    """Top-1 accuracy (%) of uint8 NHWC images, normalised with (mean, std), in eval mode."""
    model.eval()
    correct = 0
    for start in range(0, len(images), batch_size):
        x = normalize(images[start : start + batch_size], mean, std).to(device)
        if precision.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with precision.context(device):
            logits = model(x)
        correct += (logits.argmax(1).cpu() == torch.from_numpy(labels[start : start + len(x)])).sum().item()
    return 100.0 * correct / max(1, len(images))


# ----------------------------------------------------------------------------------------------
# The run


def identify(
    spec: Spec, variant: Variant, options: RunOptions, budget: Budget, data_sha256: str, device_type: str
) -> Identity:
    """The identity of a run (`variant` after its protocol): every `auto` option resolved, so that two
    requests that would run the same way are one run, and any difference makes another."""
    recipe = variant.recipe
    protocol = options.protocol if options.protocol in ("own", "common") else Path(options.protocol).stem
    tested_claims = [c for c in spec.claims_for(variant.name) if c.selection in TEST_SELECTION]
    track_test = options.track_test
    if track_test is None:  # the claim's own rule needs the test curve; only at the budget that can judge it
        track_test = budget.is_full and protocol == "own" and bool(tested_claims)
    augment = resolve_augment(recipe, options.augment)
    return Identity(
        report=spec.name,
        variant=variant.name,
        spec_hash=variant.spec_hash,
        protocol=protocol,
        seed=options.seed,
        profile=budget.profile,
        epochs=budget.epochs,
        train_images=budget.train_images,
        data_sha256=data_sha256,
        device_type=device_type,
        precision=resolve_precision(recipe, device_type, options.precision),
        channels_last=resolve_layout(recipe, device_type, options.channels_last),
        augment=augment,
        workers=options.workers if augment == "torchvision" else 0,
        compile=options.compile,
        deterministic=options.deterministic,
        track_test=track_test,
        robustness=budget.is_full if options.robustness is None else options.robustness,
        teacher=_given_teacher_hash(spec, variant, options),
    )


def _given_teacher(spec: Spec, variant: Variant, options: RunOptions) -> Path | None:
    """The teacher checkpoint a run is told to load (--teacher-checkpoint, or the spec's), if any."""
    distill = variant.recipe.train.distill
    if distill is None:
        return None
    if options.teacher_checkpoint is not None:
        return Path(options.teacher_checkpoint)
    return spec.path.parent.parent / distill.teacher_checkpoint if distill.teacher_checkpoint else None


def _given_teacher_hash(spec: Spec, variant: Variant, options: RunOptions) -> str | None:
    path = _given_teacher(spec, variant, options)
    if path is None:
        return None
    if not path.is_file():
        raise RunError(f"teacher checkpoint {path}: no such checkpoint file")
    return checkpoint.file_sha256(path)


def run(spec: Spec, variant_name: str, options: RunOptions, results: Path, events: Events) -> dict[str, Any]:
    """Train and evaluate one variant at one budget; write and return its result record."""
    variant = with_protocol(spec, spec.variant(variant_name), resolve_protocol(spec, options.protocol))
    budget = make_budget(variant.recipe, options.profile, options.epochs, options.subset)
    recipe = compress(variant.recipe, budget)
    data = load_cifar10(options.data)
    check_fits(budget, recipe, len(data.train_x), len(data.test_x), data.label)
    device = resolve_device(options.device)  # checked before anything is written
    identity = identify(spec, variant, options, budget, data.sha256, device.type)
    record_path, ckpt_dir = identity.record_path(results), identity.checkpoint_dir(results)
    done = find_record(results, identity)
    if done is not None:
        events.message(
            f"{spec.name}/{variant.name} seed {options.seed} ({options.profile}) is already complete: {record_path}"
        )
        return done
    with checkpoint.run_lock(ckpt_dir, results):
        if checkpoint.has_checkpoint(ckpt_dir) and not options.resume:
            raise RunError(
                f"{ckpt_dir} holds a checkpoint of this run: pass --resume to continue it, "
                "or delete that folder to start again"
            )
        return _execute(spec, variant, recipe, budget, data, identity, options, results, events, device)


def _execute(
    spec: Spec,
    variant: Variant,
    recipe: Recipe,
    budget: Budget,
    data: Cifar10,
    identity: Identity,
    options: RunOptions,
    results: Path,
    events: Events,
    device: torch.device,
) -> dict[str, Any]:
    """The run proper, under its lock: set up, resume, the epoch loop, the final test and the record."""
    record_path, ckpt_dir = identity.record_path(results), identity.checkpoint_dir(results)
    if options.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    layout = "on" if identity.channels_last else "off"  # the identity's resolved settings, nothing re-decided
    precision, runtime_deviations = choose_precision(recipe, device, identity.precision, layout)

    teacher, teacher_info = _teacher(spec, variant, options, results, events, device, precision)
    splits = make_splits(data, recipe, budget)
    source = TrainSource(
        data.train_x[splits.train], data.train_y[splits.train], recipe, identity.augment, device, identity.workers
    )
    runtime_deviations.append(source.description)
    steps_per_epoch = math.ceil(len(splits.train) / recipe.train.batch_size)

    torch.manual_seed(options.seed)  # the initial weights depend on the seed alone
    model = build_model(recipe.model).to(device)
    if precision.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, recipe, fused=device.type == "cuda")
    scheduler = recipe.train.schedule.build(optimizer, recipe.train.epochs, steps_per_epoch)
    step_fn = model
    if options.compile:
        step_fn = torch.compile(model)  # inductor's FX graph cache makes later compiles of one network cheap
        runtime_deviations.append("torch.compile")

    history: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    start_epoch, elapsed_before = 0, 0.0
    if options.resume and checkpoint.has_checkpoint(ckpt_dir):
        state, rejected = checkpoint.load_latest(ckpt_dir)
        for line in rejected:
            events.message(f"warning: {line}; using an older checkpoint")
        differences = identity.differences(state.get("identity") or {})
        if differences:
            raise RunError(
                f"{ckpt_dir}: the checkpoint belongs to another run ({'; '.join(differences)}); "
                "delete that folder to start again"
            )
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            history, best = state["history"], state["best"]
            start_epoch, elapsed_before = state["epoch"] + 1, state["wall_time_s"]
        except (KeyError, RuntimeError, ValueError, TypeError) as error:
            first = (str(error).splitlines() or [""])[0][:200]
            raise RunError(
                f"{ckpt_dir}: its checkpoint does not fit this run ({type(error).__name__}: {first})"
            ) from None
        events.message(f"resuming {spec.name}/{variant.name} after epoch {start_epoch} of {recipe.train.epochs}")

    events.message(_estimate(model, teacher, recipe, budget, splits, device, precision, identity.track_test))
    # The loss is read back to the host every step on the CPU (free) and every READBACK_CUDA steps on
    # CUDA, so that the GPU never waits for the host; a NaN is caught at the next read-back.
    readback = 1 if device.type != "cuda" else READBACK_CUDA
    started = time.perf_counter()
    status, diverged_at = "complete", None
    for epoch in range(start_epoch, recipe.train.epochs):
        rng, gen, aug_gen = seed_epoch(options.seed, epoch, device)
        phase, phase_mixes = phase_at(recipe, epoch)
        mixing = mixing_this_epoch(recipe.train.mix, phase_mixes, rng)
        lr = optimizer.param_groups[0]["lr"]
        model.train()
        epoch_start = time.perf_counter()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        seen = 0
        with events.progress(steps_per_epoch, f"epoch {epoch + 1}/{recipe.train.epochs} [{phase}]") as advance:
            for step, (x, y) in enumerate(source.batches(recipe.train.batch_size, gen, aug_gen)):
                loss, logits, batch = training_step(
                    step_fn, teacher, optimizer, scheduler, recipe, precision, device, x, y, mixing, rng, gen
                )
                loss_sum += loss * len(y)
                correct += (logits.argmax(1) == batch.targets_a).sum()
                seen += len(y)
                if (step + 1) % readback == 0 or step + 1 == steps_per_epoch:
                    loss_value = loss.item()
                    if not math.isfinite(loss_value):
                        status, diverged_at = "diverged", {"epoch": epoch, "step": step, "loss": str(loss_value)}
                        break
                    advance(
                        readback if (step + 1) % readback == 0 else (step + 1) % readback,
                        loss=f"{loss_sum.item() / seen:.3f}",
                        acc=f"{100 * correct.item() / seen:.1f}%",
                    )
        if status == "diverged":
            events.message(f"epoch {epoch + 1}: loss became {diverged_at['loss']} at step {step}; stopping (diverged)")
            break
        if recipe.train.schedule.step == "epoch":
            scheduler.step()
        train_seconds = time.perf_counter() - epoch_start
        entry = {
            "epoch": epoch,
            "phase": phase,
            "mixing": bool(mixing),
            "lr": lr,
            "train_loss": loss_sum.item() / seen,
            "train_acc_first_label": 100 * correct.item() / seen,
            "val_acc": _validate(model, data, splits, source, recipe, device, precision, options, epoch),
            "train_images_per_s": seen / train_seconds,
            "seconds": time.perf_counter() - epoch_start,
        }
        if identity.track_test:
            entry["test_acc_monitor"] = evaluate(
                model, data.test_x[splits.test], data.test_y[splits.test], recipe, device, precision
            )
        history.append(entry)
        improved = entry["val_acc"] is not None and (best is None or entry["val_acc"] >= best["val_acc"])
        if improved:  # kept whatever eval.select says: the best-val rule's figure is recorded for every run
            # >=: the later epoch wins ties, as in 003
            best = {"epoch": epoch, "val_acc": entry["val_acc"], "model": copy.deepcopy(model.state_dict())}
        checkpoint.save(
            ckpt_dir,
            epoch,
            {
                "identity": identity.as_dict(),
                "epoch": epoch,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng": {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": rng.bit_generator.state},
                "history": history,
                "best": best,
                "wall_time_s": elapsed_before + time.perf_counter() - started,
                **_model_identity(recipe, variant),
            },
        )
        events.message(_epoch_line(entry, recipe.train.epochs))  # after the save: a shown epoch is a stored one

    outcome = Outcome(history, status, diverged_at, history[-1]["epoch"] if history else None)
    outcome.wall_time_s = elapsed_before + time.perf_counter() - started
    ctx = Context(
        spec,
        variant,
        recipe,
        options,
        budget,
        data,
        splits,
        identity,
        record_path,
        ckpt_dir,
        device,
        precision,
        tuple(runtime_deviations),
        source.kind,
    )
    if status == "complete":
        test_images, test_labels = data.test_x[splits.test], data.test_y[splits.test]

        def score(images: np.ndarray) -> float:
            return evaluate(model, images, test_labels, recipe, device, precision)

        outcome.test_acc_by_rule = _test_by_rule(model, best, history, score, test_images)
        if recipe.eval.select == "best-val" and best is not None:
            model.load_state_dict(best["model"])
            outcome.selected_epoch = best["epoch"]
        outcome.test_acc = outcome.test_acc_by_rule[SELECT_RULE[recipe.eval.select]]
        checkpoint.save_file(
            ckpt_dir / "final.pt",
            {"model": model.state_dict(), "selected_epoch": outcome.selected_epoch, **_model_identity(recipe, variant)},
        )
        if identity.robustness:
            events.message(f"scoring {len(test_images):,} test images under 5 corruptions x 3 severities")
            outcome.robustness = corrupted_accuracy(score, test_images)
    record = _record(ctx, outcome, teacher_info)
    checkpoint.atomic_write_json(record_path, record)
    shown = "-" if outcome.test_acc is None else f"{outcome.test_acc:.2f}%"
    events.message(f"{status}: test accuracy {shown} -> {record_path}")
    return record


SELECT_RULE = {"last": "last-epoch", "best-val": "best-val"}  # eval.select -> the rule whose figure it is


def _test_by_rule(
    model: nn.Module,
    best: dict[str, Any] | None,
    history: list[dict[str, Any]],
    score: Callable[[np.ndarray], float],
    test_images: np.ndarray,
) -> dict[str, Any]:
    """The test accuracy each selection rule gives: the last epoch's model, the best validation epoch's,
    and the best epoch on the test curve (only with --track-test; a claim's rule, never the harness's).

    Leaves `model` at its last epoch; each model is tested once, whatever the spec selects.
    """
    last = score(test_images)
    figures: dict[str, Any] = {"last-epoch": last, "best-val": None, "best-val-epoch": None}
    if best is not None:
        figures["best-val-epoch"] = best["epoch"]
        if best["epoch"] == history[-1]["epoch"]:
            figures["best-val"] = last
        else:
            last_state = copy.deepcopy(model.state_dict())
            model.load_state_dict(best["model"])
            figures["best-val"] = score(test_images)
            model.load_state_dict(last_state)
    monitor = [(h["test_acc_monitor"], h["epoch"]) for h in history if "test_acc_monitor" in h]
    value, epoch = max(monitor) if monitor else (None, None)  # ties: the later epoch
    figures["best-epoch-test"], figures["best-epoch-test-epoch"] = value, epoch
    return figures


def _model_identity(recipe: Recipe, variant: Variant) -> dict[str, Any]:
    """What `harness eval` needs to rebuild and score a saved model without its spec."""
    return {
        "spec_hash": variant.spec_hash,
        "model_config": recipe.model.model_dump(mode="json"),
        "normalization": {"mean": list(recipe.data.mean), "std": list(recipe.data.std)},
    }


def _validate(
    model: nn.Module,
    data: Cifar10,
    splits: Splits,
    source: TrainSource,
    recipe: Recipe,
    device: torch.device,
    precision: Precision,
    options: RunOptions,
    epoch: int,
) -> float | None:
    if len(splits.val) == 0:
        return None
    images, labels = data.train_x[splits.val], data.train_y[splits.val]
    if recipe.data.val_transform == "eval":
        return evaluate(model, images, labels, recipe, device, precision)
    # 002 validates on images that pass through the training transform; seeded so resumes agree.
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for x, y in source.augment(images, labels, recipe.eval.batch_size, options.seed * 1_000_003 + epoch):
            with precision.context(device):
                correct += (model(x).argmax(1) == y).sum().item()
            total += len(y)
    return 100.0 * correct / max(1, total)


@contextlib.contextmanager
def _forked_rng(seed: int) -> Iterator[None]:
    state = torch.get_rng_state()
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.set_rng_state(state)


def _epoch_line(entry: dict[str, Any], epochs: int) -> str:
    val = "-" if entry["val_acc"] is None else f"{entry['val_acc']:.2f}%"
    line = (
        f"epoch {entry['epoch'] + 1}/{epochs} [{entry['phase']}{', mixed' if entry['mixing'] else ''}] "
        f"lr {entry['lr']:.3g} loss {entry['train_loss']:.4f} train(first label) {entry['train_acc_first_label']:.2f}% "
        f"val {val} {entry['train_images_per_s']:.0f} img/s {entry['seconds']:.0f}s"
    )
    if "test_acc_monitor" in entry:
        line += f" test(monitor) {entry['test_acc_monitor']:.2f}%"
    return line


def _estimate(
    model: nn.Module,
    teacher: nn.Module | None,
    recipe: Recipe,
    budget: Budget,
    splits: Splits,
    device: torch.device,
    precision: Precision,
    track_test: bool,
) -> str:
    """Time a few training steps on copies (the run's own state is untouched) and extrapolate."""
    probe = copy.deepcopy(model).train()
    optimizer = torch.optim.SGD(probe.parameters(), lr=0.0)
    batch = min(recipe.train.batch_size, PROBE_BATCH, len(splits.train))
    x, y = probe_batch(batch, device)
    times = []
    for _ in range(PROBE_STEPS + 1):
        start = time.perf_counter()
        loss = probe_loss(probe, teacher, x, y, precision, device)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    train_rate = batch / float(np.median(times[1:]))
    eval_rate = 3 * train_rate  # a forward pass is about a third of a training step
    per_epoch = len(splits.train) / train_rate + (len(splits.val) + (len(splits.test) if track_test else 0)) / eval_rate
    total = recipe.train.epochs * per_epoch + len(splits.test) / eval_rate
    macs = size_of(recipe.model).macs
    full = ""
    if budget.is_full:
        per_image = step_flops(copy.deepcopy(model).train(), teacher, 4, precision, device)
        est = full_recipe_estimate(recipe, per_image, train_rate)
        full = (
            f"; on an H100 it would take about {_duration(est['hours_h100'] * 3600)} "
            f"(bf16, assuming {est['h100_assumed_mfu']:.0%} of its peak)"
        )
    return (
        f"estimate: {recipe.train.epochs} epochs x {len(splits.train):,} images at {train_rate:.0f} img/s "
        f"({macs / 1e6:.0f} MMACs/image) on {device_name(device)} ({device.type}, {torch.get_num_threads()} threads): "
        f"about {_duration(total)} [{budget.profile} budget]{full}"
    )


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s"


def _teacher(
    spec: Spec,
    variant: Variant,
    options: RunOptions,
    results: Path,
    events: Events,
    device: torch.device,
    precision: Precision,
) -> tuple[nn.Module | None, dict[str, Any] | None]:
    """The distillation teacher: a given checkpoint, a finished teacher run, or a teacher trained now."""
    distill = variant.recipe.train.distill
    linked = spec.teacher_of(variant)
    if distill is None or linked is None:
        return None, None
    teacher_spec, teacher_variant = linked
    model = build_model(teacher_variant.recipe.model)
    given = _given_teacher(spec, variant, options)
    info: dict[str, Any] = {
        "spec": str(teacher_spec.path),
        "variant": teacher_variant.name,
        "spec_hash": teacher_variant.spec_hash,
    }
    if given is not None:
        path = Path(given)
        events.message(f"teacher: loading {path}")
    else:
        # The teacher's own run: its records serve every student of the same seed, budget and data.
        teacher_options = dataclasses.replace(options, teacher_checkpoint=None, track_test=None, robustness=None)
        teacher_record = run(teacher_spec, teacher_variant.name, teacher_options, results, events)
        if teacher_record["status"] != "complete":
            raise RunError(
                f"the teacher {teacher_spec.name}/{teacher_variant.name} did not finish ({teacher_record['status']})"
            )
        path = Path(teacher_record["checkpoint_dir"]) / "final.pt"
        info["record"] = teacher_record["record_path"]
        info["test_acc"] = teacher_record["test_acc"]
    try:
        state = checkpoint.load_file(path, verify=given is None)
        model.load_state_dict(state.get("model", state))
    except (checkpoint.CheckpointError, RuntimeError, KeyError) as error:
        raise RunError(f"teacher checkpoint {path}: {error}") from None
    info["checkpoint"] = str(path)
    info["folded_batchnorm"] = True  # the frozen teacher's BatchNorms are folded into its convolutions
    model = fold_batchnorm(model.eval()).to(device)
    if precision.channels_last:
        model = model.to(memory_format=torch.channels_last)
    for p in model.parameters():
        p.requires_grad_(False)
    return model, info


def _record(ctx: Context, outcome: Outcome, teacher: dict[str, Any] | None) -> dict[str, Any]:
    """The result record: what ran, on what, with which outcome, and everything needed to redo it."""
    spec, variant, recipe, options, budget = ctx.spec, ctx.variant, ctx.recipe, ctx.options, ctx.budget
    data, splits, device, precision = ctx.data, ctx.splits, ctx.device, ctx.precision
    history, status = outcome.history, outcome.status
    deviations = [f"{d.key}: {d.note}" for d in variant.deviations]
    if not budget.is_full:
        deviations.append(
            f"budget '{budget.profile}': {budget.epochs} of {budget.spec_epochs} epochs"
            f" (schedules compressed x{budget.time_scale:.3g}), {len(splits.train)} training images"
        )
    if not data.official:
        deviations.append(f"data: {data.label}")
    deviations += ctx.runtime_deviations
    final_val = next((h["val_acc"] for h in history if h["epoch"] == outcome.selected_epoch), None)
    throughput = [h["train_images_per_s"] for h in history]
    return {
        "schema": SCHEMA,
        "report": spec.name,
        "report_id": spec.report.id,
        "variant": variant.name,
        "seed": options.seed,
        "profile": budget.profile,
        "status": status,
        "protocol": ctx.identity.protocol,
        "identity": ctx.identity.as_dict(),
        "run_id": ctx.identity.run_id,
        "cohort": ctx.identity.cohort,
        "diverged_at": outcome.diverged_at,
        "is_reproduction": status == "complete" and budget.is_full and data.official and ctx.identity.protocol == "own",
        "test_acc": outcome.test_acc,
        "val_acc": final_val,
        "selected_epoch": outcome.selected_epoch,
        "selection": recipe.eval.select,
        "test_acc_by_rule": outcome.test_acc_by_rule,
        "robustness": outcome.robustness,
        "budget": {
            **budget.as_dict(),
            "train_images": len(splits.train),
            "val_images": len(splits.val),
            "test_images": len(splits.test),
            "batch_size": recipe.train.batch_size,
        },
        "data_source": data.label,
        "data": {"source": data.source, "official": data.official, "sha256": data.sha256},
        "spec_file": str(spec.path),
        "spec_hash": variant.spec_hash,
        "model_hash": content_hash(recipe.model.model_dump(mode="json", exclude_defaults=True)),
        "recipe": recipe.model_dump(mode="json"),
        "deviations": deviations,
        "teacher": teacher,
        "params": size_of(recipe.model).params,
        "macs": size_of(recipe.model).macs,
        "augment_pipeline": ctx.source_kind,
        "device": {
            "type": device.type,
            "name": device_name(device),
            "threads": torch.get_num_threads(),
            "autocast": None if precision.autocast is None else str(precision.autocast).removeprefix("torch."),
            "channels_last": precision.channels_last,
            "deterministic": options.deterministic,
            "workers": options.workers,
        },
        "versions": versions(),
        "git": git_state(Path(__file__).parent),
        "wall_time_s": outcome.wall_time_s,
        "device_hours": outcome.wall_time_s / 3600,
        "train_images_per_s": float(np.median(throughput)) if throughput else None,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "record_path": str(ctx.record_path),
        "checkpoint_dir": str(ctx.ckpt_dir),
        "history": history,
    }
