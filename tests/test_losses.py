"""Mixup, CutMix, report 002's switch, per-epoch mixing, label smoothing and distillation arithmetic."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from harness.spec import Distill, Mix
from harness.train.step import (
    cutmix_box,
    distillation_term,
    mix_batch,
    mixed_cross_entropy,
    mixing_this_epoch,
    training_loss,
    unmixed,
)


def batch(n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 3, 32, 32, generator=g), torch.arange(n) % 10


def test_mixup_is_a_convex_combination_with_a_permutation() -> None:
    x, y = batch()
    mixed = mix_batch(
        x, y, Mix(mode="mixup", mixup_alpha=1.0), np.random.default_rng(0), torch.Generator().manual_seed(0)
    )
    assert mixed.kind == "mixup"
    index = [int((y == t).nonzero()) for t in mixed.targets_b]
    assert torch.allclose(mixed.inputs, mixed.lam * x + (1 - mixed.lam) * x[index])
    assert sorted(index) == list(range(len(y)))


@pytest.mark.parametrize("alpha", [0.3, 0.9, 1.0])
def test_mixup_lambda_follows_beta(alpha: float) -> None:
    rng, gen = np.random.default_rng(1), torch.Generator().manual_seed(1)
    x, y = batch(2)
    lams = np.array([mix_batch(x, y, Mix(mode="mixup", mixup_alpha=alpha), rng, gen).lam for _ in range(4000)])
    variance = alpha * alpha / ((2 * alpha) ** 2 * (2 * alpha + 1))
    assert lams.mean() == pytest.approx(0.5, abs=0.03) and lams.var() == pytest.approx(variance, rel=0.1)


def test_cutmix_pastes_a_box_and_lambda_is_its_complement() -> None:
    x, y = batch()
    rng, gen = np.random.default_rng(2), torch.Generator().manual_seed(2)
    for _ in range(50):
        mixed = mix_batch(x, y, Mix(mode="cutmix", cutmix_alpha=1.0), rng, gen)
        changed = (mixed.inputs != x).any(1).any(0)
        area = changed.sum().item()
        assert mixed.lam == pytest.approx(1 - area / 1024, abs=64 / 1024)  # box may overlap equal pixels (self-pairs)
        index = [int((y == t).nonzero()) for t in mixed.targets_b]
        rows, cols = changed.any(1).nonzero(), changed.any(0).nonzero()
        if area:
            r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
            assert torch.equal(mixed.inputs[:, :, r0:r1, c0:c1], x[index][:, :, r0:r1, c0:c1])


def test_cutmix_box_is_clipped_and_sized() -> None:
    rng = np.random.default_rng(3)
    for lam in (0.1, 0.5, 0.9):
        y1, y2, x1, x2 = cutmix_box(32, 32, lam, rng)
        assert 0 <= y1 <= y2 <= 32 and 0 <= x1 <= x2 <= 32
        assert (y2 - y1) <= int(32 * np.sqrt(1 - lam)) + 1


def test_002_switches_half_cutmix_half_mixup() -> None:
    rng, gen = np.random.default_rng(4), torch.Generator().manual_seed(4)
    x, y = batch(4)
    mix = Mix(mode="mixup_or_cutmix", mixup_alpha=0.3, cutmix_alpha=1.0, switch_prob=0.5)
    kinds = [mix_batch(x, y, mix, rng, gen).kind for _ in range(2000)]
    assert abs(kinds.count("cutmix") - 1000) < 5 * np.sqrt(500) and kinds.count("none") == 0


def test_per_batch_probability() -> None:
    rng, gen = np.random.default_rng(5), torch.Generator().manual_seed(5)
    x, y = batch(4)
    kinds = [mix_batch(x, y, Mix(mode="mixup", prob=0.3), rng, gen).kind for _ in range(2000)]
    assert abs(kinds.count("mixup") - 600) < 5 * np.sqrt(2000 * 0.21)


def test_per_epoch_coin_of_004() -> None:
    mix = Mix(mode="mixup", prob=0.9, per="epoch")
    rng = np.random.default_rng(6)
    epochs = [mixing_this_epoch(mix, True, rng) for _ in range(4000)]
    assert abs(sum(epochs) - 3600) < 5 * np.sqrt(4000 * 0.09)
    assert not mixing_this_epoch(mix, False, rng)  # the second phase switches mixing off
    assert not mixing_this_epoch(None, True, rng)


def test_label_smoothing_equals_002s_formula() -> None:
    logits, y = torch.randn(16, 10), torch.randint(0, 10, (16,))
    eps = 0.1
    logp = F.log_softmax(logits, 1)
    by_hand = (1 - eps) * F.nll_loss(logp, y) + eps * (-logp.mean(1)).mean()
    assert mixed_cross_entropy(logits, unmixed(logits, y), eps).item() == pytest.approx(by_hand.item(), rel=1e-6)


def test_mixed_cross_entropy_weights_both_labels() -> None:
    logits, ya, yb = torch.randn(8, 10), torch.randint(0, 10, (8,)), torch.randint(0, 10, (8,))
    from harness.train.step import Mixed

    got = mixed_cross_entropy(logits, Mixed(logits, ya, yb, 0.3, "mixup"), 0.0)
    assert got.item() == pytest.approx((0.3 * F.cross_entropy(logits, ya) + 0.7 * F.cross_entropy(logits, yb)).item())


def _distill(**kw) -> Distill:
    return Distill(**{"teacher_variant": "teacher", "temperature": 6.0, "kd_weight": 1.0, "ce_weight": 0.0, **kw})


def test_000s_distillation_is_3_6_times_the_per_sample_kl() -> None:
    s, t = torch.randn(32, 10), torch.randn(32, 10)
    per_sample = F.kl_div(F.log_softmax(s / 6, 1), F.softmax(t / 6, 1), reduction="batchmean")
    as_coded = distillation_term(s, t, _distill(kl_reduction="mean"))
    assert as_coded.item() == pytest.approx(3.6 * per_sample.item(), rel=1e-5)
    x, y = batch(32)
    # kd_weight 1, ce_weight 0: the mixup cross-entropy does not reach the loss at all
    assert training_loss(s, unmixed(x, y), 0.0, _distill(kl_reduction="mean"), t).item() == pytest.approx(
        as_coded.item()
    )


def test_textbook_distillation() -> None:
    s, t, y = torch.randn(32, 10), torch.randn(32, 10), torch.randint(0, 10, (32,))
    d = _distill(kd_weight=0.95, ce_weight=0.05, kl_reduction="batchmean")
    kl = F.kl_div(F.log_softmax(s / 6, 1), F.softmax(t / 6, 1), reduction="batchmean")
    expected = 0.95 * 36 * kl + 0.05 * F.cross_entropy(s, y)
    assert training_loss(s, unmixed(s, y), 0.0, d, t).item() == pytest.approx(expected.item(), rel=1e-5)
