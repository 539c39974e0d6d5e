"""`harness speed`: how fast a spec trains here, against the bare model and the reports' own kind of loop.

All five measurements run in one process on the same machine, each after warm-up steps:
  (a) bare     the model's forward (and, for distillation, the teacher's), loss, backward and optimizer
               step on tensors already resident on the device, at the harness's precision and layout;
  (b) harness  the harness's training step with the spec's whole recipe and its batched augmentation;
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
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset

from harness.losses import mix_batch, mixing_this_epoch, training_loss, unmixed
from harness.measure import device_name, full_recipe_estimate, probe_batch, probe_loss, step_flops, sync
from harness.models import build_model, fold_batchnorm
from harness.spec import Recipe, Spec
from harness.train import (
    TrainSource,
    build_optimizer,
    choose_precision,
    optimizer_step,
    seed_epoch,
    training_step,
)

NAIVE_WORKERS = 2


class _PilImages(Dataset):
    """CIFAR-style dataset of PIL images, as torchvision.datasets.CIFAR10 serves them."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: nn.Module) -> None:
        self.images = [Image.fromarray(image) for image in images]
        self.labels, self.transform = labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.images[index]), int(self.labels[index])


def _naive_transform(recipe: Recipe) -> nn.Module:
    import torchvision.transforms.v2 as T

    # PIL in, per-sample ops, then ToTensor-like conversion and Normalize (the reports' order for 004,
    # which converts first, differs only in where ToTensor sits; the cost is the same kind).
    ops = [op.torchvision() for op in recipe.augment.train if not op.needs_float]
    float_ops = [op.torchvision() for op in recipe.augment.train if op.needs_float]
    return T.Compose(
        [
            *ops,
            T.ToImage(),
            T.ToDtype(torch.float32, scale=True),
            *float_ops,
            T.Normalize(recipe.data.mean, recipe.data.std),
        ]
    )


def _timed(step: Any, batches: int, warmup: int, device: torch.device) -> float:
    """Seconds for `batches` calls of step() after `warmup` untimed ones."""
    for _ in range(warmup):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(batches):
        step()
    sync(device)
    return time.perf_counter() - start


def matmul_peak(device: torch.device, dtype: torch.dtype, size: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of a large square matmul at this precision: the practical peak the MFU is measured against."""
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    times = []
    for i in range(repeats + 1):
        sync(device)
        start = time.perf_counter()
        a @ b
        sync(device)
        if i:
            times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times)


def measure_speed(
    spec: Spec,
    variant_name: str,
    images: np.ndarray,
    labels: np.ndarray,
    data_label: str,
    device: torch.device,
    precision_choice: str = "fp32",
    steps: int = 4,
    warmup: int = 2,
) -> dict[str, Any]:
    """The five throughputs, their ratios and the MFU for one variant (see the module docstring)."""
    variant = spec.variant(variant_name)
    recipe = variant.recipe
    batch = recipe.train.batch_size
    precision, _ = choose_precision(recipe, device, precision_choice)
    linked = spec.teacher_of(variant)
    teacher_recipe = linked[1].recipe if linked else None

    def models(channels_last: bool) -> tuple[nn.Module, nn.Module | None]:
        torch.manual_seed(0)
        model = build_model(recipe.model).to(device).train()
        teacher = fold_batchnorm(build_model(teacher_recipe.model).eval()).to(device) if teacher_recipe else None
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
            teacher = teacher.to(memory_format=torch.channels_last) if teacher else None
        return model, teacher

    # (a) bare: resident tensors, the harness's precision and layout, no data path and no bookkeeping
    model, teacher = models(precision.channels_last)
    optimizer = recipe.train.optimizer.build(model)
    x, y = probe_batch(batch, device, precision.channels_last)

    def bare_step() -> None:
        optimizer_step(model, optimizer, probe_loss(model, teacher, x, y, precision, device), clip=None)

    bare = steps * batch / _timed(bare_step, steps, warmup, device)
    flops_per_image = step_flops(model, teacher, batch, precision, device)

    # (b) harness: the training step of `harness run` on batches from the resident, batched data path
    model, teacher = models(precision.channels_last)
    optimizer = build_optimizer(model, recipe, fused=device.type == "cuda")
    scheduler = recipe.train.schedule.build(optimizer, recipe.train.epochs, math.ceil(len(images) / batch))
    source = TrainSource(images, labels, recipe, "batched", device, 0)
    rng, gen, aug_gen = seed_epoch(0, 0, device)
    mixing = mixing_this_epoch(recipe.train.mix, True, rng)
    stream = _endless(source, batch, gen, aug_gen)

    def harness_step() -> None:
        xb, yb = next(stream)
        loss, _, _ = training_step(
            model, teacher, optimizer, scheduler, recipe, precision, device, xb, yb, mixing, rng, gen
        )
        if device.type != "cuda":
            loss.item()  # as `harness run` reads it on the CPU

    harness = steps * batch / _timed(harness_step, steps, warmup, device)

    # (d) the harness's data path alone, before any DataLoader worker exists to compete with it
    aug_batches = max(100, steps * 25)
    data_harness = aug_batches * batch / _timed(lambda: next(stream), aug_batches, 5, device)

    # (c) naive: PIL + per-sample transforms in 2 workers, NCHW fp32, a plain loop reading the loss
    model, teacher = models(False)
    optimizer = build_optimizer(model, recipe)
    scheduler = recipe.train.schedule.build(optimizer, recipe.train.epochs, math.ceil(len(images) / batch))
    naive_set = _PilImages(images, labels, _naive_transform(recipe))
    naive_batches = _endless_loader(naive_set, batch)

    def naive_step() -> None:
        xb, yb = next(naive_batches)
        xb, yb = xb.to(device), yb.to(device)
        mixed = mix_batch(xb, yb, recipe.train.mix, rng, gen) if mixing else unmixed(xb, yb)
        logits = model(mixed.inputs)
        teacher_logits = None
        if teacher is not None:
            with torch.no_grad():
                teacher_logits = teacher(mixed.inputs)
        loss = training_loss(logits, mixed, recipe.train.label_smoothing, recipe.train.distill, teacher_logits)
        optimizer.zero_grad()
        loss.backward()
        if recipe.train.grad_clip_value is not None:
            nn.utils.clip_grad_value_(model.parameters(), recipe.train.grad_clip_value)
        optimizer.step()
        if recipe.train.schedule.step == "batch":
            scheduler.step()
        loss.item()

    naive = steps * batch / _timed(naive_step, steps, warmup, device)

    # (e) the naive DataLoader alone (its workers already warm from (c))
    naive_data_batches = max(20, steps * 5)
    data_naive = naive_data_batches * batch / _timed(lambda: next(naive_batches), naive_data_batches, 3, device)

    peak_dtype = torch.bfloat16 if precision.autocast is not None else torch.float32
    peak = matmul_peak(device, peak_dtype)
    achieved = flops_per_image * harness
    return {
        "report": spec.name,
        "variant": variant.name,
        "device": device_name(device),
        "threads": torch.get_num_threads(),
        "precision": "bf16" if precision.autocast is not None else "fp32",
        "channels_last": precision.channels_last,
        "batch_size": batch,
        "steps": steps,
        "images": data_label,
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
        "mfu": achieved / peak,
        "estimate": full_recipe_estimate(recipe, flops_per_image, harness),
    }


def _endless(source: TrainSource, batch: int, gen: torch.Generator, aug_gen: torch.Generator):
    while True:
        yield from source.batches(batch, gen, aug_gen)


def _endless_loader(dataset: Dataset, batch: int):
    while True:
        loader = DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=NAIVE_WORKERS)
        yield from loader
