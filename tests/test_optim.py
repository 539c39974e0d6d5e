"""Optimizers, Lookahead, clipping and every schedule, checked against the values the reports' logs show."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from harness.spec import load_spec
from harness.train.optim import OPTIMIZERS, SCHEDULES, param_groups
from harness.train.step import build_optimizer, optimizer_step
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
    assert values[30] == pytest.approx(0.0986, rel=0.01)  # report 001 stops at epoch 30: barely decayed


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
    assert cosine.scaled(0.15, 0.01).t_max == 30  # epochs scale by the epoch factor
    per_batch = SCHEDULES["cosine"].model_validate({"name": "cosine", "t_max": 1000, "step": "batch"})
    assert per_batch.scaled(0.5, 0.01).t_max == 10  # optimizer steps by the step factor
    warm = SCHEDULES["warmup_cosine"].model_validate(
        {"name": "warmup_cosine", "warmup_epochs": 10, "decay_epochs": 290}
    )
    assert (warm.scaled(0.1, 0.1).warmup_epochs, warm.scaled(0.1, 0.1).decay_epochs) == (1, 29)
    assert (
        SCHEDULES["step"].model_validate({"name": "step", "step_size": 20, "gamma": 0.5}).scaled(0.1, 1).step_size == 2
    )


def test_a_compressed_warm_up_keeps_its_starting_factor() -> None:
    # report 002: 10 warm-up epochs from 0.1x. Compressed to one epoch, the run must still start at 0.1x,
    # not at the full rate; compressed to five, it climbs 0.1, 0.325, 0.55, 0.775, 1.0 as the original does
    # over ten (0.1, 0.2, ..., 1.0).
    warm = SCHEDULES["warmup_cosine"].model_validate(
        {"name": "warmup_cosine", "warmup_epochs": 10, "decay_epochs": 290}
    )
    assert lrs(warm.model_dump(), 10)[0][:10] == pytest.approx([0.01 * (e + 1) for e in range(10)])
    one = warm.scaled(1 / 300, 1 / 300)
    assert (one.warmup_epochs, one.warmup_start_factor) == (1, pytest.approx(0.1))
    assert lrs(one.model_dump(), 2)[0] == pytest.approx([0.01, 0.1])  # 0.1x, then the cosine's top
    five = warm.scaled(0.5, 0.5)
    assert lrs(five.model_dump(), 5)[0] == pytest.approx([0.01, 0.0325, 0.055, 0.0775, 0.1])


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


def _lookahead_trajectory(first_sync: str, steps: int = 12, resume_after: int | None = None) -> list[float]:
    """w after each of `steps` SGD steps (lr 1, no momentum) on loss = w, so every gradient is 1, under
    Lookahead(k=5, alpha=0.5); optionally rebuilt from a state_dict after `resume_after` steps."""
    recipe = load_spec(SPECS_DIR / "dmsresnet.toml").variant("as-coded").recipe
    train = recipe.train
    update = {
        "lookahead": train.lookahead.model_copy(update={"k": 5, "alpha": 0.5, "first_sync": first_sync}),
        "optimizer": train.optimizer.model_copy(update={"momentum": 0.0, "weight_decay": 0.0, "lr": 1.0}),
    }
    recipe = recipe.model_copy(update={"train": train.model_copy(update=update)})
    holder = nn.Module()
    holder.w = nn.Parameter(torch.tensor([0.0]))
    optimizer = build_optimizer(holder, recipe)
    out = []
    for step in range(1, steps + 1):
        optimizer_step(holder, optimizer, holder.w.sum(), None)
        out.append(holder.w.item())
        if step == resume_after:  # as a resumed run rebuilds it: a new optimizer loaded from the saved state
            state = optimizer.state_dict()
            optimizer = build_optimizer(holder, recipe)
            optimizer.load_state_dict(state)
    return out


def test_lookahead_as_released_syncs_after_steps_1_6_11() -> None:
    # Thakur et al.'s lookahead.py (pasted into report 000's notebooks): the slow weights are the weights after
    # step 1 (a sync that changes nothing), then w6 = w1 + 0.5 (fast6 - w1): -1 + 0.5 (-6 + 1) = -3.5,
    # and w11 = -3.5 + 0.5 (-8.5 + 3.5) = -6.
    released = [-1, -2, -3, -4, -5, -3.5, -4.5, -5.5, -6.5, -7.5, -6, -7]
    assert _lookahead_trajectory("after-step-1") == released
    assert _lookahead_trajectory("after-step-1", resume_after=7) == released


def test_lookahead_as_timm_syncs_after_steps_5_10() -> None:
    # timm: the slow weights are the weights after step 5 (no change), then w10 = -5 + 0.5 (-10 + 5) = -7.5.
    timm_rule = [-1, -2, -3, -4, -5, -6, -7, -8, -9, -7.5, -8.5, -9.5]
    assert _lookahead_trajectory("after-step-k") == timm_rule
    assert _lookahead_trajectory("after-step-k", resume_after=3) == timm_rule


def test_gradient_clipping_by_value() -> None:
    w = nn.Parameter(torch.tensor([0.0, 0.0, 0.0]))
    holder = nn.Module()
    holder.w = w
    optimizer = torch.optim.SGD([w], lr=1.0)
    optimizer_step(holder, optimizer, (w * torch.tensor([5.0, -0.05, -3.0])).sum(), clip=0.1)
    assert w.tolist() == pytest.approx([-0.1, 0.05, 0.1])  # each element of the gradient clipped to [-0.1, 0.1]


def test_multistep_of_wide_resnets() -> None:
    # WRN: 0.1, x0.2 before the 60th, 120th and 160th epoch (1-based), as train.lua does
    schedule = {"name": "multistep", "milestones": (59, 119, 159), "gamma": 0.2}
    values, _ = lrs(schedule, 200)
    assert values[58] == pytest.approx(0.1) and values[59] == pytest.approx(0.02)
    assert (
        values[119] == pytest.approx(0.004)
        and values[159] == pytest.approx(0.0008)
        and values[199] == pytest.approx(0.0008)
    )


def test_a_warm_up_factor_chains_onto_any_schedule() -> None:
    # ResNet-110 (He et al. 2016): 0.01 for the first 400 iterations, then 0.1, then /10 at 32k and 48k.
    resnet110 = {
        "name": "multistep",
        "milestones": (32_000, 48_000),
        "step": "batch",
        "warmup_steps": 400,
        "warmup_factor": 0.1,
    }
    values, _ = lrs(resnet110, 1, steps_per_epoch=50_000, per_step=True)
    assert values[0] == values[399] == pytest.approx(0.01) and values[400] == pytest.approx(0.1)
    assert (
        values[31_999] == pytest.approx(0.1)
        and values[32_000] == pytest.approx(0.01)
        and values[48_000] == pytest.approx(0.001)
    )
    cosine, _ = lrs({"name": "cosine", "t_max": 10, "warmup_steps": 2, "warmup_factor": 0.5}, 10)
    plain, _ = lrs({"name": "cosine", "t_max": 10}, 10)
    assert cosine[:2] == pytest.approx([0.5 * v for v in plain[:2]]) and cosine[2:] == pytest.approx(plain[2:])


def test_a_compressed_warm_up_keeps_its_factor_and_milestones_keep_their_place() -> None:
    wrn = SCHEDULES["multistep"].model_validate(
        {"name": "multistep", "milestones": (60, 120, 160), "gamma": 0.2, "warmup_steps": 10, "warmup_factor": 0.1}
    )
    short = wrn.scaled(0.1, 0.5)  # a tenth of the epochs
    assert (short.milestones, short.warmup_steps, short.warmup_factor) == ((6, 12, 16), 1, 0.1)


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ({"name": "onecycle", "max_lr": 0.1, "warmup_steps": 5, "warmup_factor": 0.1}, "has its own warm-up"),
        ({"name": "cosine", "t_max": 5, "warmup_steps": 5}, "set both or neither"),
        ({"name": "multistep", "milestones": (10, 5)}, "must increase from 1"),
        ({"name": "multistep", "milestones": (0, 5)}, "must increase from 1"),
    ],
)
def test_schedule_problems(schedule: dict, message: str) -> None:
    problems = SCHEDULES[schedule["name"]].model_validate(schedule).problems()
    assert any(message in text for _, text in problems), problems
