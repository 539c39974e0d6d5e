"""One training step of a recipe, and the per-epoch randomness and optimizer it runs with.

`TrainStep` is the step `harness run` takes and `harness speed` times: mix, forward (and the frozen
teacher's), loss, backward, clip, optimizer step, and the scheduler when it steps per batch.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from harness.augment import Pipeline
from harness.losses import Mixed, mix_batch, training_loss, unmixed
from harness.models import build_model
from harness.runtime import Runtime
from harness.source import TrainSource
from harness.spec import Recipe

if TYPE_CHECKING:
    from harness.context import RunContext


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


def phase_at(recipe: Recipe, epoch: int) -> tuple[str, bool]:
    """(phase name, whether mixing is on) for a 0-based epoch."""
    end = 0
    for phase in recipe.train.phases:
        end += phase.epochs
        if epoch < end:
            return phase.name, phase.mix
    return "main", True


def build_optimizer(model: nn.Module, recipe: Recipe, fused: bool = False) -> torch.optim.Optimizer:
    """The recipe's optimizer over the model's parameters, wrapped in Lookahead when the recipe has it."""
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


@dataclass(frozen=True)
class TrainStep:
    """Everything a training step needs, fixed for the run; call it with a batch."""

    model: nn.Module  # what runs forward (torch.compile's wrapper with --compile)
    teacher: nn.Module | None  # frozen, BatchNorm folded, in eval mode
    optimizer: torch.optim.Optimizer
    scheduler: Any
    recipe: Recipe
    runtime: Runtime

    def __call__(
        self, x: torch.Tensor, y: torch.Tensor, mixing: bool, rng: np.random.Generator, gen: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, Mixed]:
        """(loss, logits, mixed batch), all detached; the loss stays on the device."""
        train = self.recipe.train
        if self.runtime.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        batch = mix_batch(x, y, train.mix, rng, gen) if mixing else unmixed(x, y)
        with self.runtime.autocast_context():
            logits = self.model(batch.inputs)
            teacher_logits = None
            if self.teacher is not None:
                with torch.inference_mode():
                    teacher_logits = self.teacher(batch.inputs).float()
                teacher_logits = teacher_logits.clone()  # an inference tensor cannot enter the autograd graph
            loss = training_loss(logits.float(), batch, train.label_smoothing, train.distill, teacher_logits)
        optimizer_step(self.model, self.optimizer, loss, train.grad_clip_value)
        if train.schedule.step == "batch":
            self.scheduler.step()
        return loss.detach(), logits.detach(), batch


def steps_per_epoch(ctx: RunContext) -> int:
    return math.ceil(len(ctx.splits.train) / ctx.recipe.train.batch_size)


def make_step(ctx: RunContext, teacher: nn.Module | None) -> tuple[nn.Module, TrainStep, TrainSource]:
    """A run's model (its initial weights from the seed alone), its training step and its batches."""
    recipe, runtime = ctx.recipe, ctx.runtime
    images, labels = ctx.split("train")
    pipeline = Pipeline(recipe.augment.train, recipe.data.mean, recipe.data.std)
    source = TrainSource(images, labels, pipeline, ctx.identity.augment, runtime, ctx.identity.workers)
    torch.manual_seed(ctx.identity.seed)
    model = runtime.model(build_model(recipe.model))
    optimizer = build_optimizer(model, recipe, fused=runtime.fused_optimizer)
    scheduler = recipe.train.schedule.build(optimizer, recipe.train.epochs, steps_per_epoch(ctx))
    forward = torch.compile(model) if ctx.identity.compile else model  # inductor caches compiled graphs
    return model, TrainStep(forward, teacher, optimizer, scheduler, recipe, runtime), source
