"""What the model does with a batch: the training step, the losses it uses, and scoring.

`TrainStep` is the step `harness run` takes and `harness speed` times: mix (mixup, cutmix, report 002's
switch between them), forward (and the frozen teacher's), loss, backward, clip, optimizer step, and the
scheduler when it steps per batch. The per-epoch randomness and the optimizer are made here too.

Scoring is top-1 accuracy on clean and augmented images. The test transform is the training pipeline
with no ops: the uint8-to-float rule and the normalisation are the training path's own. Nothing here
chooses a model on test data: each selection rule's model is tested once (`test_by_rule`), and the spec
names which figure is the clean one.
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.common.device import Runtime
from harness.data.augment import Pipeline
from harness.data.cifar10 import TrainingImages, on_device
from harness.models import build_model
from harness.spec import Distill, Mix, Recipe

if TYPE_CHECKING:
    from harness.train.request import RunContext


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
    """Optimizer steps in one epoch: every training image once, the last batch possibly short."""
    return math.ceil(len(ctx.splits.train) / ctx.recipe.train.batch_size)


def make_step(ctx: RunContext, teacher: nn.Module | None) -> tuple[nn.Module, TrainStep, TrainingImages]:
    """A run's model (its initial weights from the seed alone), its training step and its batches."""
    recipe, runtime = ctx.recipe, ctx.runtime
    images, labels = ctx.split("train")
    pipeline = Pipeline(recipe.augment.train, recipe.data.mean, recipe.data.std)
    source = TrainingImages(images, labels, pipeline, ctx.identity.augment, runtime, ctx.identity.workers)
    torch.manual_seed(ctx.identity.seed)
    model = runtime.model(build_model(recipe.model))
    optimizer = build_optimizer(model, recipe, fused=runtime.fused_optimizer)
    scheduler = recipe.train.schedule.build(optimizer, recipe.train.epochs, steps_per_epoch(ctx))
    forward = torch.compile(model) if ctx.identity.compile else model  # inductor caches compiled graphs
    return model, TrainStep(forward, teacher, optimizer, scheduler, recipe, runtime), source


@dataclass(frozen=True)
class Mixed:
    """A batch after mixing: the loss is lam * L(targets_a) + (1 - lam) * L(targets_b)."""

    inputs: torch.Tensor
    targets_a: torch.Tensor
    targets_b: torch.Tensor
    lam: float
    kind: str  # "none", "mixup" or "cutmix"


def unmixed(x: torch.Tensor, y: torch.Tensor) -> Mixed:
    return Mixed(x, y, y, 1.0, "none")


def cutmix_box(height: int, width: int, lam: float, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """The CutMix box (Yun et al.'s rand_bbox): side sqrt(1 - lam), centre uniform, clipped to the image."""
    cut = np.sqrt(1.0 - lam)
    cut_h, cut_w = int(height * cut), int(width * cut)
    cy, cx = int(rng.integers(height)), int(rng.integers(width))
    y1, y2 = np.clip(cy - cut_h // 2, 0, height), np.clip(cy + cut_h // 2, 0, height)
    x1, x2 = np.clip(cx - cut_w // 2, 0, width), np.clip(cx + cut_w // 2, 0, width)
    return int(y1), int(y2), int(x1), int(x2)


def mixing_this_epoch(mix: Mix | None, phase_mixes: bool, rng: np.random.Generator) -> bool:
    """Whether batches of this epoch may be mixed: per-epoch specs (report 004) flip one coin with P = prob."""
    if mix is None or not phase_mixes:
        return False
    return mix.per == "batch" or bool(rng.random() < mix.prob)


def mix_batch(x: torch.Tensor, y: torch.Tensor, mix: Mix, rng: np.random.Generator, gen: torch.Generator) -> Mixed:
    """Mix one batch with a random in-batch permutation, as every report's code does.

    Written by hand rather than with timm's Mixup: timm pairs each image with the batch flipped
    (i with N-1-i), while the reports draw a random permutation. `mix.per == "batch"` draws the
    probability here; per-epoch switching is decided by the caller.
    """
    if mix.per == "batch" and rng.random() >= mix.prob:
        return unmixed(x, y)
    use_cutmix = mix.mode == "cutmix" or (mix.mode == "mixup_or_cutmix" and rng.random() < mix.switch_prob)
    index = torch.randperm(x.shape[0], generator=gen).to(x.device)
    if use_cutmix:
        lam = float(rng.beta(mix.cutmix_alpha, mix.cutmix_alpha))
        y1, y2, x1, x2 = cutmix_box(x.shape[2], x.shape[3], lam, rng)
        x = x.clone()
        x[:, :, y1:y2, x1:x2] = x[index, :, y1:y2, x1:x2]
        lam = 1.0 - (y2 - y1) * (x2 - x1) / (x.shape[2] * x.shape[3])  # the area actually pasted
        return Mixed(x, y, y[index], lam, "cutmix")
    lam = float(rng.beta(mix.mixup_alpha, mix.mixup_alpha))
    return Mixed(lam * x + (1.0 - lam) * x[index], y, y[index], lam, "mixup")


def mixed_cross_entropy(logits: torch.Tensor, batch: Mixed, label_smoothing: float) -> torch.Tensor:
    """lam * CE(y_a) + (1 - lam) * CE(y_b), each with the recipe's label smoothing."""
    loss = F.cross_entropy(logits, batch.targets_a, label_smoothing=label_smoothing)
    if batch.lam == 1.0:
        return loss
    return batch.lam * loss + (1.0 - batch.lam) * F.cross_entropy(
        logits, batch.targets_b, label_smoothing=label_smoothing
    )


def distillation_term(student: torch.Tensor, teacher: torch.Tensor, distill: Distill) -> torch.Tensor:
    """[T^2] * KL(softmax(t/T) || softmax(s/T)) with the spec's reduction.

    'mean' is PyTorch's KLDivLoss default (report 000's code): it divides by batch x classes, so with T = 6
    the term is 36 / 10 = 3.6 x the per-sample KL. 'batchmean' is the textbook (Hinton) form.
    """
    t = distill.temperature
    log_p, q = F.log_softmax(student / t, dim=1), F.softmax(teacher / t, dim=1)
    if distill.kl_reduction == "mean":  # report 000's coded 'mean', spelled out: torch's warns on every call
        kl = F.kl_div(log_p, q, reduction="none").mean()
    else:
        kl = F.kl_div(log_p, q, reduction=distill.kl_reduction)
    return kl * (t * t) if distill.scale_by_t2 else kl


def training_loss(
    logits: torch.Tensor,
    batch: Mixed,
    label_smoothing: float,
    distill: Distill | None = None,
    teacher_logits: torch.Tensor | None = None,
) -> torch.Tensor:
    """The recipe's loss: mixed cross-entropy, or kd_weight * KD + ce_weight * mixed cross-entropy."""
    ce = mixed_cross_entropy(logits, batch, label_smoothing)
    if distill is None or teacher_logits is None:
        return ce
    return distill.kd_weight * distillation_term(logits, teacher_logits, distill) + distill.ce_weight * ce


@torch.no_grad()
def correct_mask(
    model: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    test_transform: Pipeline,
    batch_size: int,
    runtime: Runtime,
) -> np.ndarray:
    """Whether each of uint8 NHWC images is classified right, through the test transform, in eval mode."""
    model.eval()
    hits = []
    for start in range(0, len(images), batch_size):
        x = runtime.images(test_transform.batched(on_device(images[start : start + batch_size], runtime.device)))
        with runtime.autocast_context():
            logits = model(x)
        hits.append((logits.argmax(1).cpu() == torch.from_numpy(labels[start : start + len(x)])).numpy())
    return np.concatenate(hits) if hits else np.zeros(0, dtype=bool)


def percent(mask: np.ndarray) -> float:
    """Top-1 accuracy (%) from a correctness mask (0 for no images)."""
    return 100.0 * int(mask.sum()) / max(1, len(mask))


def test_transform(recipe: Recipe) -> Pipeline:
    """The recipe's test transform: no ops, then its normalisation."""
    return Pipeline((), recipe.data.mean, recipe.data.std)


@torch.no_grad()
def augmented_accuracy(model: nn.Module, batches: Any, runtime: Runtime) -> float:
    """Top-1 accuracy (%) over batches that already went through the training transform (report 002's validation)."""
    model.eval()
    correct = total = 0
    for x, y in batches:
        with runtime.autocast_context():
            correct += (model(x).argmax(1) == y).sum().item()
        total += len(y)
    return 100.0 * correct / max(1, total)


def validation_accuracy(
    model: nn.Module, images: np.ndarray, labels: np.ndarray, recipe: Recipe, source: TrainingImages, seed: int
) -> float | None:
    """Accuracy on the held-out split, through the eval transform or (report 002) seeded training augmentation."""
    if len(images) == 0:
        return None
    if recipe.data.val_transform == "eval":
        return percent(
            correct_mask(model, images, labels, test_transform(recipe), recipe.eval.batch_size, source.runtime)
        )
    batches = source.augmented(images, labels, recipe.eval.batch_size, seed)
    return augmented_accuracy(model, batches, source.runtime)


def test_by_rule(
    model: nn.Module, best: dict[str, Any] | None, history: list[dict[str, Any]], correct: Callable[[], np.ndarray]
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The test accuracy each selection rule gives: the last epoch's model, the best validation epoch's,
    and the best epoch of the test curve (only with --track-test; a claim's rule, never the harness's);
    and, for the models tested here, which test images each got right (for paired comparisons).

    Leaves `model` at its last epoch; each model is tested once, whatever the spec selects.
    """
    masks = {"last-epoch": correct()}
    figures: dict[str, Any] = {"last-epoch": percent(masks["last-epoch"]), "best-val": None, "best-val-epoch": None}
    if best is not None:
        figures["best-val-epoch"] = best["epoch"]
        if best["epoch"] == history[-1]["epoch"]:
            masks["best-val"] = masks["last-epoch"]
        else:
            last_state = copy.deepcopy(model.state_dict())
            model.load_state_dict(best["model"])
            masks["best-val"] = correct()
            model.load_state_dict(last_state)
        figures["best-val"] = percent(masks["best-val"])
    monitor = [(h["test_acc_monitor"], h["epoch"]) for h in history if "test_acc_monitor" in h]
    value, epoch = max(monitor) if monitor else (None, None)  # ties: the later epoch
    figures["best-epoch-test"], figures["best-epoch-test-epoch"] = value, epoch
    return figures, masks
