"""`harness speed`: how fast a spec trains here, against the bare model and the reports' own kind of loop.

All five measurements run in one process on the same machine, each after warm-up steps:
  (a) bare     the model's forward (and, for distillation, the teacher's), loss, backward and optimizer
               step on tensors already resident on the device, at the harness's precision and layout;
  (b) harness  the harness's training step (step.TrainStep) with the spec's whole recipe and its batched
               augmentation;
  (c) naive    a loop like the reports' code: a DataLoader over PIL images with per-sample torchvision
               transforms and 2 worker processes, NCHW, fp32;
  (d) the harness's augmentation path alone; (e) the naive DataLoader alone.
FLOP/s are counted by torch.utils.flop_counter for one training step (forward and backward) and set
against a large matmul timed in the same run at the same precision (the machine's practical peak).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset

from harness.common.device import Runtime, device_name
from harness.data.augment import Pipeline
from harness.data.cifar10 import TrainingImages
from harness.measure.compute import probe_batch, probe_loss, step_flops
from harness.measure.gpu import full_recipe_estimate
from harness.models import build_model, fold_batchnorm
from harness.spec import Spec
from harness.train.step import (
    TrainStep,
    build_optimizer,
    mix_batch,
    mixing_this_epoch,
    optimizer_step,
    seed_epoch,
    training_loss,
    unmixed,
)

NAIVE_WORKERS = 2


@dataclass(frozen=True)
class SpeedSetup:
    """What `harness speed` times: a spec's variant on some images, with a runtime, over `steps` steps."""

    spec: Spec
    variant: str
    images: np.ndarray  # uint8 NHWC
    labels: np.ndarray
    images_label: str  # where the images came from
    runtime: Runtime
    steps: int = 4
    warmup: int = 2

    @property
    def recipe(self) -> Any:
        return self.spec.variant(self.variant).recipe

    def models(self, channels_last: bool) -> tuple[nn.Module, nn.Module | None]:
        """The student in training mode and its frozen, folded teacher, on the device."""
        linked = self.spec.teacher_of(self.spec.variant(self.variant))
        layout = self.runtime.but(channels_last=channels_last)
        torch.manual_seed(0)
        model = layout.model(build_model(self.recipe.model)).train()
        teacher = layout.model(fold_batchnorm(build_model(linked[1].recipe.model).eval())) if linked else None
        return model, teacher


def measure_speed(setup: SpeedSetup) -> dict[str, Any]:
    """The five throughputs, their ratios and the MFU for one variant (see the module docstring)."""
    runtime, batch = setup.runtime, setup.recipe.train.batch_size
    bare, flops_per_image = _bare(setup)
    harness, data_harness = _harness(setup)
    naive, data_naive = _naive(setup)
    peak_dtype = torch.bfloat16 if runtime.autocast is not None else torch.float32
    peak, peak_size = matmul_peak(runtime, peak_dtype)
    achieved = flops_per_image * harness
    return {
        "report": setup.spec.name,
        "variant": setup.variant,
        "device": device_name(runtime.device),
        "threads": torch.get_num_threads(),
        "precision": runtime.precision,
        "channels_last": runtime.channels_last,
        "torch": torch.__version__,
        "conditions": (
            f"{runtime.precision}, {'channels_last' if runtime.channels_last else 'NCHW'}, eager, batch {batch}, "
            f"torch {torch.__version__}, {device_name(runtime.device)}, {torch.get_num_threads()} threads"
        ),
        "batch_size": batch,
        "steps": setup.steps,
        "images": setup.images_label,
        "bare_img_s": bare,
        "harness_img_s": harness,
        "naive_img_s": naive,
        "data_harness_img_s": data_harness,
        "data_naive_img_s": data_naive,
        "harness_over_bare": harness / bare,
        "harness_over_naive": harness / naive,
        "data_over_naive": data_harness / data_naive,
        "train_flops_per_image": flops_per_image,
        "achieved_flops": achieved,
        "matmul_peak_flops": peak,
        "matmul_dtype": str(peak_dtype).removeprefix("torch."),
        "matmul_size": peak_size,
        "mfu": achieved / peak,
        "estimate": full_recipe_estimate(setup.recipe, f"{setup.spec.name}/{setup.variant}", flops_per_image, harness),
    }


def _bare(setup: SpeedSetup) -> tuple[float, float]:
    """(a): images per second of the bare step on resident tensors, and the step's FLOPs per image."""
    runtime, batch = setup.runtime, setup.recipe.train.batch_size
    model, teacher = setup.models(runtime.channels_last)
    optimizer = setup.recipe.train.optimizer.build(model)
    x, y = probe_batch(batch, runtime)

    def bare_step() -> None:
        optimizer_step(model, optimizer, probe_loss(model, teacher, x, y, runtime), clip=None)

    rate = setup.steps * batch / _timed(bare_step, setup.steps, setup.warmup, runtime)
    return rate, step_flops(model, teacher, batch, runtime)


def _harness(setup: SpeedSetup) -> tuple[float, float]:
    """(b) and (d): images per second of `harness run`'s step on the batched data path, and of that path alone."""
    runtime, recipe = setup.runtime, setup.recipe
    batch = recipe.train.batch_size
    model, teacher = setup.models(runtime.channels_last)
    optimizer = build_optimizer(model, recipe, fused=runtime.fused_optimizer)
    scheduler = recipe.train.schedule.build(optimizer, recipe.train.epochs, math.ceil(len(setup.images) / batch))
    pipeline = Pipeline(recipe.augment.train, recipe.data.mean, recipe.data.std)
    source = TrainingImages(setup.images, setup.labels, pipeline, "batched", runtime)
    rng, gen, aug_gen = seed_epoch(0, 0, runtime.device)
    mixing = mixing_this_epoch(recipe.train.mix, True, rng)
    stream = _endless(lambda: source.batches(batch, gen, aug_gen))
    step = TrainStep(model, teacher, optimizer, scheduler, recipe, runtime)

    def harness_step() -> None:
        loss, _, _ = step(*next(stream), mixing, rng, gen)
        if runtime.readback_every == 1:
            loss.item()  # as `harness run` reads it back every step on the CPU

    rate = setup.steps * batch / _timed(harness_step, setup.steps, setup.warmup, runtime)
    # (d), before any DataLoader worker exists to compete with it
    aug_batches = setup.steps * 25  # 100 at the default 4 steps; --steps 1 is a quick look
    return rate, aug_batches * batch / _timed(lambda: next(stream), aug_batches, 5, runtime)


def _naive(setup: SpeedSetup) -> tuple[float, float]:
    """(c) and (e): a plain loop over a PIL DataLoader with 2 workers, NCHW fp32, and that loader alone."""
    runtime, recipe = setup.runtime.but(autocast=None), setup.recipe
    batch, train = recipe.train.batch_size, recipe.train
    model, teacher = setup.models(False)
    optimizer = build_optimizer(model, recipe)
    scheduler = train.schedule.build(optimizer, train.epochs, math.ceil(len(setup.images) / batch))
    # PIL in and per-sample ops, as the reports' loaders do (pipeline.py puts ToTensor after the uint8 ops)
    transform = Pipeline(recipe.augment.train, recipe.data.mean, recipe.data.std).per_sample(pil_input=True)
    batches = _endless(
        lambda: DataLoader(
            _PilImages(setup.images, setup.labels, transform), batch, shuffle=True, num_workers=NAIVE_WORKERS
        )
    )
    rng, gen, _ = seed_epoch(0, 0, runtime.device)
    mixing = mixing_this_epoch(train.mix, True, rng)

    def naive_step() -> None:
        xb, yb = (t.to(runtime.device) for t in next(batches))
        mixed = mix_batch(xb, yb, train.mix, rng, gen) if mixing else unmixed(xb, yb)
        logits = model(mixed.inputs)
        teacher_logits = None
        if teacher is not None:
            with torch.no_grad():
                teacher_logits = teacher(mixed.inputs)
        loss = training_loss(logits, mixed, train.label_smoothing, train.distill, teacher_logits)
        optimizer_step(model, optimizer, loss, train.grad_clip_value)
        if train.schedule.step == "batch":
            scheduler.step()
        loss.item()

    rate = setup.steps * batch / _timed(naive_step, setup.steps, setup.warmup, runtime)
    # (e), its workers already warm from (c)
    loader_batches = setup.steps * 5  # 20 at the default 4 steps
    return rate, loader_batches * batch / _timed(lambda: next(batches), loader_batches, 3, runtime)


MATMUL_SECONDS = 0.5  # the longest one timed matmul may take


def matmul_peak(runtime: Runtime, dtype: torch.dtype, max_size: int = 2048, repeats: int = 5) -> tuple[float, int]:
    """FLOP/s of a large square matmul at this precision, the practical peak the MFU is measured against, and
    its side: from 256, doubled up to max_size while the doubled one would take under MATMUL_SECONDS here (a
    CPU without bf16 units takes about a minute for one 2048 bf16 matmul on one core)."""
    size = 256
    _matmul_seconds(runtime, dtype, size)  # the first call pays for the library's setup (cuBLAS handles)
    while size < max_size and _matmul_seconds(runtime, dtype, size) * 8 < MATMUL_SECONDS:
        size *= 2  # doubling the side multiplies the work by 8
    times = [_matmul_seconds(runtime, dtype, size) for _ in range(repeats + 1)][1:]
    return 2 * size**3 / statistics.median(times), size


def _matmul_seconds(runtime: Runtime, dtype: torch.dtype, size: int) -> float:
    a = torch.randn(size, size, device=runtime.device).to(dtype)
    b = torch.randn(size, size, device=runtime.device).to(dtype)
    runtime.sync()
    start = time.perf_counter()
    a @ b
    runtime.sync()
    return time.perf_counter() - start


class _PilImages(Dataset):
    """CIFAR-style dataset of PIL images, as torchvision.datasets.CIFAR10 serves them."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: nn.Module) -> None:
        self.images = [Image.fromarray(image) for image in images]
        self.labels, self.transform = labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.images[index]), int(self.labels[index])


def _timed(step: Callable[[], Any], batches: int, warmup: int, runtime: Runtime) -> float:
    """Seconds for `batches` calls of step() after `warmup` untimed ones."""
    for _ in range(warmup):
        step()
    runtime.sync()
    start = time.perf_counter()
    for _ in range(batches):
        step()
    runtime.sync()
    return time.perf_counter() - start


def _endless(epoch: Callable[[], Any]) -> Iterator[Any]:
    """Batches of one epoch after another, without end."""
    while True:
        yield from epoch()


def speed_text(result: dict[str, Any]) -> str:
    """The five rates as a table, then the ratios, the MFU and what the full recipe would cost."""
    from tabulate import tabulate

    rows = [
        ["(a) bare model step, resident tensors", f"{result['bare_img_s']:.1f}"],
        ["(b) harness training loop", f"{result['harness_img_s']:.1f}"],
        ["(c) naive loop (PIL DataLoader, 2 workers, NCHW fp32)", f"{result['naive_img_s']:.1f}"],
        ["(d) harness augmentation alone", f"{result['data_harness_img_s']:.0f}"],
        ["(e) naive DataLoader alone", f"{result['data_naive_img_s']:.0f}"],
    ]
    est = result["estimate"]
    return "\n".join(
        [
            (
                f"{result['report']}/{result['variant']}, measured under: {result['conditions']} "
                "(the naive loop: NCHW fp32)"
            ),
            tabulate(rows, headers=["loop", "images/s"], tablefmt="github", disable_numparse=True),
            (
                f"harness/bare {result['harness_over_bare']:.3f}, harness/naive {result['harness_over_naive']:.2f}, "
                f"data/naive {result['data_over_naive']:.1f}; MFU {result['mfu']:.2f} "
                f"({result['achieved_flops'] / 1e9:.0f} GFLOP/s of a {result['matmul_peak_flops'] / 1e9:.0f} GFLOP/s "
                f"{result['matmul_dtype']} matmul at {result['matmul_size']})"
            ),
            (
                f"full recipe ({est['epochs']} epochs x {est['train_images']:,} images): about {est['hours_here']:.1f} h "
                f"here, {est['hours_gpu']:.2f} h on an {est['gpu_device']} ({est['gpu_basis']})"
            ),
        ]
    )
