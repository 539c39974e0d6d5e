"""Training: one visible loop for every recipe, resumable, on any device, with an honest budget.

`run()` reads top to bottom: resolve the request into a run context (request.py), skip it if its record
exists, then under the run's lock get the teacher, build the model, resume, `fit` (`train_one_epoch`
plus validation and a checkpoint per epoch), `select_and_test`, and write the record. Randomness is
reseeded from (seed, epoch) at the start of every epoch, so a run resumed from any checkpoint replays
exactly the data order, augmentation and mixing of an uninterrupted one. The test set never chooses
anything: each selection rule's model is tested once, and the spec names the clean figure.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from harness.common.errors import RunError, Stopped
from harness.common.events import Events
from harness.data.cifar10 import TrainingImages
from harness.data.corrupt import CORRUPTIONS, SEVERITIES, corrupted_accuracy
from harness.results.record import SELECT_RULE, Record, Tested, Trained, find_record, make_record, write_record
from harness.spec import Spec
from harness.train import checkpoint
from harness.train.estimate import estimate_line, estimate_run, teacher_plan
from harness.train.request import RunContext, RunOptions, given_teacher, prepare
from harness.train.step import (
    TrainStep,
    correct_mask,
    make_step,
    mixing_this_epoch,
    percent,
    phase_at,
    seed_epoch,
    steps_per_epoch,
    test_by_rule,
    test_transform,
    validation_accuracy,
)
from harness.train.teacher import TeacherFile, load_teacher


def run(spec: Spec, variant_name: str, options: RunOptions, results: Path, events: Events) -> Record:
    """Train and evaluate one variant at one budget; write and return its result record."""
    ctx = prepare(spec, variant_name, options, results)  # everything checked before anything is written
    done = find_record(results, ctx.identity)
    if done is not None:
        events.message(
            f"{spec.name}/{ctx.variant.name} seed {options.seed} ({options.profile}) is already complete: {done.record_path}"
        )
        return done
    with checkpoint.run_lock(ctx.checkpoint_dir, results):
        if checkpoint.has_checkpoint(ctx.checkpoint_dir) and not options.resume:
            raise RunError(
                f"{ctx.checkpoint_dir} holds a checkpoint of this run: pass --resume to continue it, "
                "or delete that folder to start again"
            )
        try:
            return train_and_test(ctx, events)
        except Stopped as stopped:  # SIGINT or SIGTERM: say how far the run got (the CLI prints it)
            stopped.reached = stopped.reached or _reached(ctx)
            raise


def _reached(ctx: RunContext) -> str:
    """How far a stopped run got: the last epoch whose checkpoint is on disk, counted from 1."""
    name = f"{ctx.spec.name}/{ctx.variant.name} seed {ctx.identity.seed}"
    saved = [int(m[1]) for p in ctx.checkpoint_dir.glob("epoch-*.pt") if (m := checkpoint.PATTERN.match(p.name))]
    if not saved:
        return f"{name} stopped before its first epoch ended (no checkpoint yet)"
    epochs = ctx.recipe.train.epochs
    return f"{name} reached epoch {max(saved) + 1} of {epochs} (its checkpoint is in {ctx.checkpoint_dir})"


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """SIGINT and SIGTERM wait while a checkpoint or record is written, then act as they would have: a stop
    never leaves half a file, or a temporary one, behind. Only the main thread can set handlers."""
    held = (signal.SIGINT, signal.SIGTERM)
    if threading.current_thread() is not threading.main_thread() or any(signal.getsignal(s) is None for s in held):
        yield
        return
    caught: list[int] = []
    previous = {s: signal.signal(s, lambda signum, frame: caught.append(signum)) for s in held}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if caught:
            signal.raise_signal(caught[0])  # now, to the handler it was meant for


def train_and_test(ctx: RunContext, events: Events) -> Record:
    """The run proper, under its lock: teacher, model, resume, epochs, test, record."""
    ctx.runtime.apply_process_settings()
    teacher, teacher_info = _teacher(ctx, events)
    model, step, source = make_step(ctx, teacher)

    start = _resume(ctx, step, model, events)
    events.message(estimate_line(ctx, estimate_run(ctx, teacher, start.epoch), teacher))
    trained = fit(ctx, step, source, start, events)
    tested = select_and_test(ctx, model, trained, events) if trained.status == "complete" else Tested()
    record = make_record(ctx, trained, tested, teacher_info)
    with _signals_deferred():
        write_record(record)
    shown = "-" if record.test_acc is None else f"{record.test_acc:.2f}%"
    events.message(f"{record.status}: test accuracy {shown} -> {record.record_path}")
    return record


@dataclass(frozen=True)
class StartPoint:
    """Where a run starts: epoch 0, or the epoch after its last checkpoint."""

    epoch: int = 0
    history: tuple[dict[str, Any], ...] = ()
    best: dict[str, Any] | None = None
    wall_time_s: float = 0.0


def fit(ctx: RunContext, step: TrainStep, source: TrainingImages, start: StartPoint, events: Events) -> Trained:
    """Every epoch from `start`: train, validate, (monitor the test set), checkpoint."""
    history, best = list(start.history), start.best
    started = time.perf_counter()
    epochs = ctx.recipe.train.epochs
    for epoch in range(start.epoch, epochs):
        epoch_start = time.perf_counter()
        entry, diverged = train_one_epoch(ctx, step, source, epoch, events)
        if diverged is not None:
            events.message(
                f"epoch {epoch + 1}: loss became {diverged['loss']} at step {diverged['step']}; stopping (diverged)"
            )
            return Trained(history, best, start.wall_time_s + time.perf_counter() - started, diverged)
        val_images, val_labels = ctx.split("val")
        val_seed = ctx.identity.seed * 1_000_003 + epoch  # report 002's augmented validation, the same on a resume
        entry["val_acc"] = validation_accuracy(_module(step), val_images, val_labels, ctx.recipe, source, val_seed)
        entry["seconds"] = time.perf_counter() - epoch_start
        if ctx.identity.track_test:
            entry["test_acc_monitor"] = _test_accuracy(ctx, _module(step))
        history.append(entry)
        if entry["val_acc"] is not None and (best is None or entry["val_acc"] >= best["val_acc"]):
            # kept whatever eval.select says (the best-val rule's figure is recorded for every run);
            # >=: the later epoch wins ties, as in report 003
            best = {"epoch": epoch, "val_acc": entry["val_acc"], "model": copy.deepcopy(_module(step).state_dict())}
        state = checkpoint.TrainState(
            identity=ctx.identity.as_dict(),
            epoch=epoch,
            model=_module(step).state_dict(),
            optimizer=step.optimizer.state_dict(),
            scheduler=step.scheduler.state_dict(),
            history=history,
            best=best,
            wall_time_s=start.wall_time_s + time.perf_counter() - started,
            model_card=model_card(ctx),
        )
        with _signals_deferred():
            checkpoint.save_state(ctx.checkpoint_dir, state)
        events.message(_epoch_line(entry, epochs))  # after the save: a shown epoch is a stored one
    return Trained(history, best, start.wall_time_s + time.perf_counter() - started)


def train_one_epoch(
    ctx: RunContext, step: TrainStep, source: TrainingImages, epoch: int, events: Events
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """One pass over the training images; returns the epoch's figures, or where the loss diverged.

    The loss is read back to the host every `runtime.readback_every` steps (1 on the CPU, where it is
    free; 10 on CUDA, so the GPU never waits), and a NaN or infinity stops the run at that read-back.
    """
    recipe, every = ctx.recipe, ctx.runtime.readback_every
    rng, gen, aug_gen = seed_epoch(ctx.identity.seed, epoch, ctx.runtime.device)
    phase, phase_mixes = phase_at(recipe, epoch)
    mixing = mixing_this_epoch(recipe.train.mix, phase_mixes, rng)
    lr = step.optimizer.param_groups[0]["lr"]
    steps = steps_per_epoch(ctx)
    step.model.train()
    started = time.perf_counter()
    loss_sum = torch.zeros((), device=ctx.runtime.device)
    correct = torch.zeros((), device=ctx.runtime.device, dtype=torch.long)
    seen = 0
    shown = 0  # images shown as done: progress counts images, so that its rate reads as img/s
    with events.progress(len(ctx.splits.train), f"epoch {epoch + 1}/{recipe.train.epochs} [{phase}]", "img") as advance:
        for i, (x, y) in enumerate(source.batches(recipe.train.batch_size, gen, aug_gen)):
            loss, logits, batch = step(x, y, mixing, rng, gen)
            loss_sum += loss * len(y)
            correct += (logits.argmax(1) == batch.targets_a).sum()
            seen += len(y)
            if (i + 1) % every == 0 or i + 1 == steps:
                value = loss.item()
                if not math.isfinite(value):
                    return {}, {"epoch": epoch, "step": i, "loss": str(value)}
                advance(seen - shown, loss=f"{loss_sum.item() / seen:.3f}", acc=f"{100 * correct.item() / seen:.1f}%")
                shown = seen
    if recipe.train.schedule.step == "epoch":
        step.scheduler.step()
    return {
        "epoch": epoch,
        "phase": phase,
        "mixing": bool(mixing),
        "lr": lr,
        "train_loss": loss_sum.item() / seen,
        "train_acc_first_label": 100 * correct.item() / seen,
        "train_images_per_s": seen / (time.perf_counter() - started),
    }, None


def select_and_test(ctx: RunContext, model: nn.Module, trained: Trained, events: Events) -> Tested:
    """Test each selection rule's model once, keep the one the spec selects (final.pt), and score it
    under corruptions when the run asks for robustness."""
    images, labels = ctx.split("test")
    transform, batch = test_transform(ctx.recipe), ctx.recipe.eval.batch_size

    def correct(test_images: Any = images) -> np.ndarray:
        return correct_mask(model, test_images, labels, transform, batch, ctx.runtime)

    def score(test_images: Any = images) -> float:
        return percent(correct(test_images))

    by_rule, masks = test_by_rule(model, trained.best, trained.history, correct)
    selected = trained.history[-1]["epoch"]
    if ctx.recipe.eval.select == "best-val" and trained.best is not None:
        model.load_state_dict(trained.best["model"])
        selected = trained.best["epoch"]
    final = {"model": model.state_dict(), "selected_epoch": selected, "model_card": model_card(ctx)}
    with _signals_deferred():
        checkpoint.save_file(ctx.checkpoint_dir / "final.pt", final)
    robustness = None
    if ctx.identity.robustness:
        passes = len(CORRUPTIONS) * len(SEVERITIES)
        events.message(
            f"scoring {len(images):,} test images under {len(CORRUPTIONS)} corruptions x {len(SEVERITIES)} severities"
        )
        with events.progress(passes * len(images), "corruptions", "img") as advance:
            robustness = corrupted_accuracy(score, images, lambda at: advance(len(images), at=at))
    return Tested(by_rule[SELECT_RULE[ctx.recipe.eval.select]], by_rule, selected, robustness, masks)


def model_card(ctx: RunContext) -> dict[str, Any]:
    """What `harness eval` needs to rebuild and score a saved model without its spec."""
    return {
        "spec_hash": ctx.variant.spec_hash,
        "model_config": ctx.recipe.model.model_dump(mode="json"),
        "normalization": {"mean": list(ctx.recipe.data.mean), "std": list(ctx.recipe.data.std)},
    }


def _resume(ctx: RunContext, step: TrainStep, model: nn.Module, events: Events) -> StartPoint:
    """The run's last checkpoint loaded into model, optimizer and scheduler (with --resume), or a fresh start."""
    if not (ctx.options.resume and checkpoint.has_checkpoint(ctx.checkpoint_dir)):
        return StartPoint()
    state, rejected = checkpoint.load_state(ctx.checkpoint_dir)
    for line in rejected:
        events.message(f"warning: {line}; using an older checkpoint")
    differences = ctx.identity.differences(state.identity)
    if differences:
        raise RunError(
            f"{ctx.checkpoint_dir}: the checkpoint belongs to another run ({'; '.join(differences)}); "
            "delete that folder to start again"
        )
    try:
        model.load_state_dict(state.model)
        step.optimizer.load_state_dict(state.optimizer)
        step.scheduler.load_state_dict(state.scheduler)
    except (KeyError, RuntimeError, ValueError, TypeError) as error:
        first = (str(error).splitlines() or [""])[0][:200]
        raise RunError(
            f"{ctx.checkpoint_dir}: its checkpoint does not fit this run ({type(error).__name__}: {first})"
        ) from None
    events.message(
        f"resuming {ctx.spec.name}/{ctx.variant.name} after epoch {state.epoch + 1} of {ctx.recipe.train.epochs}"
    )
    return StartPoint(state.epoch + 1, tuple(state.history), state.best, state.wall_time_s)


def _teacher(ctx: RunContext, events: Events) -> tuple[nn.Module | None, dict[str, Any] | None]:
    """The distillation teacher: a given checkpoint, a finished teacher run, or a teacher trained now."""
    linked = ctx.spec.teacher_of(ctx.variant)
    if ctx.recipe.train.distill is None or linked is None:
        return None, None
    teacher_spec, teacher_variant = linked
    info: dict[str, Any] = {
        "spec": str(teacher_spec.path),
        "variant": teacher_variant.name,
        "spec_hash": teacher_variant.spec_hash,
    }
    given = given_teacher(ctx.spec, ctx.variant, ctx.options)
    given_by = ""
    if given is not None:
        path = given
        given_by = (
            "--teacher-checkpoint"
            if ctx.options.teacher_checkpoint is not None
            else f"variants.{ctx.variant.name}.train.distill.teacher_checkpoint in {ctx.spec.path}"
        )
        events.message(f"teacher: loading {path}")
    else:
        events.message(teacher_plan(ctx, teacher_spec, teacher_variant))
        # The teacher's own run: its record serves every student of the same seed, budget and data.
        options = dataclasses.replace(ctx.options, teacher_checkpoint=None, track_test=None, robustness=None)
        try:
            record = run(teacher_spec, teacher_variant.name, options, ctx.results, events)
        except Stopped as stopped:
            if stopped.reached:  # the teacher's own run got this far; the student had not started
                stopped.reached = f"training the teacher of {ctx.spec.name}/{ctx.variant.name}, {stopped.reached}"
            raise
        if record.status != "complete":
            raise RunError(f"the teacher {teacher_spec.name}/{teacher_variant.name} did not finish ({record.status})")
        path = Path(record.checkpoint_dir) / "final.pt"
        info.update(record=record.record_path, test_acc=record.test_acc)
    source = TeacherFile(path, f"variant {teacher_variant.name!r} of {teacher_spec.path}", given_by, given is None)
    model = load_teacher(source, teacher_variant.recipe.model, ctx.runtime)
    info.update(checkpoint=str(path), folded_batchnorm=True)
    return model, info


def _test_accuracy(ctx: RunContext, model: nn.Module) -> float:
    images, labels = ctx.split("test")
    return percent(
        correct_mask(model, images, labels, test_transform(ctx.recipe), ctx.recipe.eval.batch_size, ctx.runtime)
    )


def _module(step: TrainStep) -> nn.Module:
    """The trained module itself (under torch.compile's wrapper, when there is one)."""
    return getattr(step.model, "_orig_mod", step.model)


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
