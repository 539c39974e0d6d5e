"""The images a run trains, validates and tests on: fixed splits, and the training batches.

The batched path keeps the training images on the device as one uint8 tensor and augments whole batches
there (augment.Pipeline.batched); the torchvision path runs the exact per-sample transforms through a
DataLoader. Both draw from the generators `step.seed_epoch` makes, so an epoch replays exactly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader

from harness.augment import Pipeline
from harness.budget import Budget
from harness.data import AugmentedImages, Cifar10, split_indices
from harness.runtime import Runtime
from harness.spec import Recipe

Batches = Iterator[tuple[torch.Tensor, torch.Tensor]]
TEST_SUBSET_SEED = 2  # offset from the spec's val_seed; `harness eval --subset` uses it with val_seed 0


@dataclass(frozen=True)
class Splits:
    """Indices of the training, validation and test images of a run."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def subset_of(index: np.ndarray, count: int, seed: int) -> np.ndarray:
    """A fixed random subset, sorted (a random one because the arrays are ordered by class)."""
    return np.sort(np.random.default_rng(seed).permutation(index)[:count])


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


def on_device(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 NHWC arrays -> a uint8 NCHW tensor on the device."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous().to(device)


class TrainSource:
    """The training images and their augmentation, on the batched or the torchvision path."""

    def __init__(
        self, images: np.ndarray, labels: np.ndarray, pipeline: Pipeline, kind: str, runtime: Runtime, workers: int = 0
    ) -> None:
        self.kind, self.runtime, self.pipeline, self.workers = (
            kind,
            runtime,
            pipeline,
            workers,
        )  # workers: torchvision path
        if kind == "batched":
            self.images = on_device(images, runtime.device)
            self.labels = torch.from_numpy(labels).to(runtime.device)
            self.description = f"augmentation: batched on {runtime.device.type}, same distributions as torchvision"
        else:
            self.dataset = AugmentedImages(images, labels, pipeline.per_sample())
            self.description = "augmentation: per-sample torchvision pipeline"

    def batches(self, batch_size: int, gen: torch.Generator, aug_gen: torch.Generator) -> Batches:
        """One epoch in a random order (all images, the last batch possibly short, as DataLoader)."""
        device = self.runtime.device
        if self.kind == "batched":
            order = torch.randperm(len(self.images), generator=gen).to(device, non_blocking=True)
            for start in range(0, len(order), batch_size):
                index = order[start : start + batch_size]
                yield self.pipeline.batched(self.images[index], aug_gen), self.labels[index]
            return
        loader = DataLoader(
            self.dataset,
            batch_size=batch_size,
            shuffle=True,
            generator=gen,
            num_workers=self.workers,
            pin_memory=self.runtime.pin_memory,
        )
        for x, y in loader:
            yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)

    def augmented(self, images: np.ndarray, labels: np.ndarray, batch_size: int, seed: int) -> Batches:
        """Images through the training transform in a fixed order, seeded (002's augmented validation)."""
        device = self.runtime.device
        if self.kind == "batched":
            gen = torch.Generator(device=device).manual_seed(seed)
            for start in range(0, len(images), batch_size):
                x = on_device(images[start : start + batch_size], device)
                yield self.pipeline.batched(x, gen), torch.from_numpy(labels[start : start + batch_size]).to(device)
            return
        loader = DataLoader(
            AugmentedImages(images, labels, self.dataset.transform), batch_size=batch_size, num_workers=self.workers
        )
        with _forked_rng(seed):
            for x, y in loader:
                yield x.to(device), y.to(device)


@contextlib.contextmanager
def _forked_rng(seed: int) -> Iterator[None]:
    state = torch.get_rng_state()
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.set_rng_state(state)
