"""Batch mixing (mixup, cutmix, 002's switch between them) and the training losses of the recipes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from harness.spec import Distill, Mix


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
    """Whether batches of this epoch may be mixed: per-epoch specs (004) flip one coin with P = prob."""
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

    'mean' is PyTorch's KLDivLoss default (000's code): it divides by batch x classes, so with T = 6
    the term is 36 / 10 = 3.6 x the per-sample KL. 'batchmean' is the textbook (Hinton) form.
    """
    t = distill.temperature
    log_p, q = F.log_softmax(student / t, dim=1), F.softmax(teacher / t, dim=1)
    if distill.kl_reduction == "mean":  # 000's coded 'mean', spelled out: torch's warns on every call
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
