"""Optimizers, Lookahead, clipping and every schedule, checked against the values the reports' logs show."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from harness.optim import OPTIMIZERS, SCHEDULES, param_groups
from harness.spec import load_spec
from harness.train import build_optimizer, optimizer_step
from tests.conftest import SPECS_DIR


def lrs(schedule: dict, epochs: int, steps_per_epoch: int = 1, lr: float = 0.1, per_step: bool = False):
    model = nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    sched = SCHEDULES[schedule["name"]].model_validate(schedule).build(optimizer, epochs, steps_per_epoch)
    out, moms = [], []
    for _ in range(epochs * (steps_per_epoch if per_step else 1)):
        out.append(optimizer.param_groups[0]["lr"])
        moms.append(optimizer.param_groups[0]["momentum"])
        optimizer.step()
        sched.step()
    return out, moms


def test_cosine_matches_the_closed_form() -> None:
    values, _ = lrs({"name": "cosine", "t_max": 200}, 200)
    for e in (0, 50, 100, 199):
        assert values[e] == pytest.approx(0.05 * (1 + math.cos(math.pi * e / 200)), abs=1e-9)


def test_cosine_past_t_max_rises_again_as_in_004() -> None:
    # seed-facts 7.2: 1.5e-6 at 401, 3.5e-4 at 415, 1.4e-3 at 430, 3.7e-3 at 449
    values, _ = lrs({"name": "cosine", "t_max": 400}, 450)
    assert values[401] == pytest.approx(1.5e-6, rel=0.05)
    assert values[415] == pytest.approx(3.5e-4, rel=0.05)
    assert values[430] == pytest.approx(1.4e-3, rel=0.05)
    assert values[449] == pytest.approx(3.7e-3, rel=0.02)
    assert values[30] == pytest.approx(0.0986, rel=0.01)  # 001 stops at epoch 30: barely decayed


def test_warmup_cosine_of_002() -> None:
    values, _ = lrs({"name": "warmup_cosine", "warmup_epochs": 10, "decay_epochs": 290}, 300, lr=0.02)
    assert values[0] == pytest.approx(0.002) and values[9] == pytest.approx(0.02) and values[10] == pytest.approx(0.02)
    assert values[299] == pytest.approx(0.02 * 0.5 * (1 - math.cos(math.pi / 290)), rel=1e-6)  # ~6e-7
    assert values[299] == pytest.approx(6e-7, rel=0.05)


def test_onecycle_of_003_with_momentum_cycling() -> None:
    values, moms = lrs(
        {"name": "onecycle", "max_lr": 0.1, "step": "batch"}, 100, steps_per_epoch=176, lr=0.001, per_step=True
    )
    assert len(values) == 17_600
    assert values[0] == pytest.approx(0.004)  # max_lr / div_factor: SGD's lr 0.001 is overridden
    peak = max(range(len(values)), key=values.__getitem__)
    assert values[peak] == pytest.approx(0.1) and peak == 5279  # epoch 30
    assert values[-1] == pytest.approx(0.1 / 25 / 1e4, rel=0.05)  # 4e-7
    assert (
        moms[0] == pytest.approx(0.95)
        and moms[peak] == pytest.approx(0.85)
        and moms[-1] == pytest.approx(0.95, abs=1e-4)
    )


def test_step_decay_of_003s_grid() -> None:
    values, _ = lrs({"name": "step", "step_size": 20, "gamma": 1 / 3}, 70)
    assert (
        values[19] == pytest.approx(0.1)
        and values[20] == pytest.approx(0.1 / 3)
        and values[69] == pytest.approx(0.1 / 27)
    )


def test_constant() -> None:
    assert set(lrs({"name": "constant"}, 5)[0]) == {0.1}


def test_schedule_compression_keeps_proportions() -> None:
    cosine = SCHEDULES["cosine"].model_validate({"name": "cosine", "t_max": 200})
    assert cosine.scaled(0.15).t_max == 30
    warm = SCHEDULES["warmup_cosine"].model_validate(
        {"name": "warmup_cosine", "warmup_epochs": 10, "decay_epochs": 290}
    )
    assert (warm.scaled(0.1).warmup_epochs, warm.scaled(0.1).decay_epochs) == (1, 29)
    assert SCHEDULES["step"].model_validate({"name": "step", "step_size": 20, "gamma": 0.5}).scaled(0.1).step_size == 2


def _model() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 30 * 30, 10))


def test_weight_decay_on_all_or_weights_only() -> None:
    (group,) = param_groups(_model(), 5e-4, "all")
    assert len(group["params"]) == 6 and group["weight_decay"] == 5e-4
    decay, no_decay = param_groups(_model(), 5e-4, "weights_only")
    assert [p.ndim for p in decay["params"]] == [4, 2] and no_decay["weight_decay"] == 0.0
    assert len(no_decay["params"]) == 4  # conv bias, BN weight and bias, linear bias


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4},
            (torch.optim.SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4}),
        ),
        ({"name": "adam", "lr": 0.01}, (torch.optim.Adam, {"lr": 0.01, "weight_decay": 0.0, "betas": (0.9, 0.999)})),
        (
            {"name": "adadelta", "lr": 0.1, "weight_decay": 1e-4},
            (torch.optim.Adadelta, {"lr": 0.1, "rho": 0.9, "weight_decay": 1e-4}),
        ),
        (
            {"name": "adamw", "lr": 0.001, "weight_decay": 0.05},
            (torch.optim.AdamW, {"lr": 0.001, "weight_decay": 0.05}),
        ),
    ],
)
def test_optimizers_get_every_argument(spec: dict, expected: tuple) -> None:
    optimizer = OPTIMIZERS[spec["name"]].model_validate(spec).build(_model())
    kind, args = expected
    assert type(optimizer) is kind
    for key, value in args.items():
        assert optimizer.param_groups[0][key] == value


def test_lookahead_arithmetic() -> None:
    # timm's Lookahead (k=2, alpha=0.5): the first sync adopts the fast weights, later syncs interpolate.
    recipe = load_spec(SPECS_DIR / "dmsresnet.toml").variant("as-coded").recipe
    recipe = recipe.model_copy(
        update={
            "train": recipe.train.model_copy(
                update={
                    "lookahead": recipe.train.lookahead.model_copy(update={"k": 2}),
                    "optimizer": recipe.train.optimizer.model_copy(
                        update={"momentum": 0.0, "weight_decay": 0.0, "lr": 0.1}
                    ),
                }
            )
        }
    )
    w = nn.Parameter(torch.tensor([1.0]))
    holder = nn.Module()
    holder.w = w
    optimizer = build_optimizer(holder, recipe)
    fast = [1.0]
    for _ in range(4):  # loss = w^2 / 2: gradient w, so each SGD step multiplies w by 0.9
        optimizer_step(holder, optimizer, (w**2).sum() / 2, None)
        fast.append(fast[-1] * 0.9)
    slow_after_2 = fast[2]  # adopted at the first sync
    fast_4 = slow_after_2 * 0.9 * 0.9
    assert w.item() == pytest.approx(slow_after_2 + 0.5 * (fast_4 - slow_after_2))


def test_gradient_clipping_by_value() -> None:
    w = nn.Parameter(torch.tensor([0.0, 0.0, 0.0]))
    holder = nn.Module()
    holder.w = w
    optimizer = torch.optim.SGD([w], lr=1.0)
    optimizer_step(holder, optimizer, (w * torch.tensor([5.0, -0.05, -3.0])).sum(), clip=0.1)
    assert w.tolist() == pytest.approx([-0.1, 0.05, 0.1])  # each element of the gradient clipped to [-0.1, 0.1]
