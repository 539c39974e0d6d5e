"""What a run will cost, said before it starts: its real training step (batch size, optimizer, augmentation,
teacher) and its scoring timed on a probe model, for the epochs left; when a teacher must be trained first,
both runs' times and their sum. For a full budget the line adds the GPU figure (measure/gpu.py). Timing costs
WARMUP_STEPS + TIMED_STEPS real steps: a run that trains fewer than PROBE_SHARE times that many is said untimed,
so that a smoke run is not held up by its own estimate (tests/test_estimate.py)."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from harness.common.device import device_name
from harness.data.corrupt import CORRUPTIONS, SEVERITIES
from harness.measure.compute import step_flops
from harness.measure.gpu import duration, full_recipe_estimate
from harness.measure.size import size_of
from harness.models import build_model
from harness.train.step import (
    correct_mask,
    make_step,
    mixing_this_epoch,
    phase_at,
    seed_epoch,
    steps_per_epoch,
    test_transform,
)

if TYPE_CHECKING:
    from harness.data.cifar10 import TrainingImages
    from harness.spec import Spec, Variant
    from harness.train.request import RunContext
    from harness.train.step import TrainStep


WARMUP_STEPS, TIMED_STEPS = 1, 1  # real steps at the recipe's batch size: the first pays for kernel selection
PROBE_SHARE = 4  # the timing probe costs at most a quarter of the training it estimates
TEST_PASSES = 2  # the test set is scored once per selection rule (last epoch, best validation epoch)


@dataclass(frozen=True)
class Estimate:
    seconds: float | None  # the epochs left, their evaluations, and the final tests; None: too short to time
    epochs: int  # epochs left
    steps: int  # training steps left
    train_img_s: float | None
    eval_img_s: float | None


class _Unscheduled:
    """A probe's scheduler: the rate stays put (the probe's steps are not the run's)."""

    def step(self) -> None:
        pass


_RATES: dict[str, tuple[float, float]] = {}  # run id -> rates: a teacher's plan and its run time each once


def estimate_run(ctx: RunContext, teacher: nn.Module | None, start_epoch: int) -> Estimate:
    """Time the run's real step and its scoring on a probe of its own (the run's model is untouched), unless
    the probe would cost more than a quarter of the training left."""
    epochs = ctx.recipe.train.epochs - start_epoch
    steps = epochs * steps_per_epoch(ctx)
    if 0 < steps < PROBE_SHARE * (WARMUP_STEPS + TIMED_STEPS):  # 0 steps (resumed before testing): time the tests
        return Estimate(None, epochs, steps, None, None)
    if ctx.identity.run_id not in _RATES:
        model, step, source = make_step(ctx, teacher)
        step = dataclasses.replace(step, scheduler=_Unscheduled())  # a 1-step schedule refuses a second step
        _RATES[ctx.identity.run_id] = (_train_rate(ctx, step, source), _eval_rate(ctx, model))
    train_rate, eval_rate = _RATES[ctx.identity.run_id]
    splits, identity = ctx.splits, ctx.identity
    per_epoch = (
        len(splits.train) / train_rate
        + (len(splits.val) + (len(splits.test) if identity.track_test else 0)) / eval_rate
    )
    passes = TEST_PASSES + (len(CORRUPTIONS) * len(SEVERITIES) if identity.robustness else 0)
    return Estimate(epochs * per_epoch + passes * len(splits.test) / eval_rate, epochs, steps, train_rate, eval_rate)


def _train_rate(ctx: RunContext, step: TrainStep, source: TrainingImages) -> float:
    """Images per second of whole training steps, batches and their augmentation included."""
    recipe, runtime = ctx.recipe, ctx.runtime
    rng, gen, aug_gen = seed_epoch(ctx.identity.seed, 0, runtime.device)  # fit() reseeds every epoch
    mixing = mixing_this_epoch(recipe.train.mix, phase_at(recipe, 0)[1], rng)
    batches = source.batches(recipe.train.batch_size, gen, aug_gen)
    images, seconds = 0, 0.0
    for i in range(WARMUP_STEPS + TIMED_STEPS):
        start = time.perf_counter()
        batch = next(batches, None)
        if batch is None:  # fewer batches than probe steps: start the epoch again
            batches = source.batches(recipe.train.batch_size, gen, aug_gen)
            batch = next(batches)
        loss, _, _ = step(*batch, mixing, rng, gen)
        loss.item()
        if i >= WARMUP_STEPS:
            images, seconds = images + len(batch[1]), seconds + time.perf_counter() - start
    return images / max(seconds, 1e-9)


def _eval_rate(ctx: RunContext, model: nn.Module) -> float:
    """Images per second of scoring (the run's eval batch size and test transform)."""
    images, labels = ctx.split("test")
    batch = min(ctx.recipe.eval.batch_size, len(images), len(ctx.splits.train))  # never more than an epoch's
    transform = test_transform(ctx.recipe)
    correct_mask(model, images[:batch], labels[:batch], transform, batch, ctx.runtime)  # warm-up
    start = time.perf_counter()
    correct_mask(model, images[:batch], labels[:batch], transform, batch, ctx.runtime)
    return batch / max(time.perf_counter() - start, 1e-9)


def estimate_line(ctx: RunContext, estimate: Estimate, teacher: nn.Module | None) -> str:
    """`estimate: ...` before a run: the epochs left here, at the rates just measured (and, for a full
    budget, the GPU figure with what it rests on: the student's step and the teacher's forward)."""
    recipe, splits, device = ctx.recipe, ctx.splits, ctx.runtime.device
    threads = torch.get_num_threads()
    work = f"{estimate.epochs} epoch{'s' * (estimate.epochs != 1)} x {len(splits.train):,} images"
    where = f"on {device_name(device)} ({device.type}, {threads} thread{'s' * (threads != 1)})"
    if estimate.seconds is None:
        return (
            f"estimate: {work} ({estimate.steps} step{'s' * (estimate.steps != 1)}) {where}: too short to time "
            f"(timing would add {WARMUP_STEPS + TIMED_STEPS} steps to its {estimate.steps}) [{ctx.budget.profile} budget]"
        )
    gpu = ""
    if ctx.budget.is_full:
        per_image = step_flops(build_model(recipe.model).to(device).train(), teacher, 4, ctx.runtime)
        est = full_recipe_estimate(recipe, f"{ctx.spec.name}/{ctx.variant.name}", per_image, estimate.train_img_s)
        gpu = f"; on an {est['gpu_device']} about {duration(est['hours_gpu'] * 3600)} ({est['gpu_basis']})"
    return (
        f"estimate: {work} at {estimate.train_img_s:.0f} img/s "
        f"({size_of(recipe.model).macs / 1e6:.0f} MMACs/image) {where}, scoring at {estimate.eval_img_s:.0f} img/s: about "
        f"{duration(estimate.seconds)} [{ctx.budget.profile} budget]{gpu}"
    )


def teacher_plan(ctx: RunContext, teacher_spec: Spec, teacher_variant: Variant) -> str:
    """What training the teacher first adds: its run's time and the student's, timed here, and their sum."""
    from harness.results.record import find_record
    from harness.train.request import prepare

    options = dataclasses.replace(ctx.options, teacher_checkpoint=None, track_test=None, robustness=None)
    teacher_ctx = prepare(teacher_spec, teacher_variant.name, options, ctx.results)
    name = f"{teacher_spec.name}/{teacher_variant.name}"
    done = find_record(ctx.results, teacher_ctx.identity)
    if done is not None:
        return f"teacher: {name} (seed {ctx.identity.seed}) was trained before: {done.record_path}"
    teacher_s = estimate_run(teacher_ctx, None, 0).seconds
    stand_in = ctx.runtime.model(build_model(teacher_variant.recipe.model)).eval().requires_grad_(False)
    student_s = estimate_run(ctx, stand_in, 0).seconds  # a teacher's forward costs the same untrained
    line = (
        f"teacher: training {name} first (seed {ctx.identity.seed}), {_about(teacher_s)}; then "
        f"{ctx.spec.name}/{ctx.variant.name}, {_about(student_s)}"
    )
    return line if teacher_s is None or student_s is None else f"{line}: about {duration(teacher_s + student_s)} in all"


def _about(seconds: float | None) -> str:
    return "too short to time" if seconds is None else f"about {duration(seconds)}"
