"""Budgets: profiles, overrides, and schedules and phases compressed in proportion."""

from __future__ import annotations

import pytest

from harness.budget import BudgetError, compress, make_budget
from harness.spec import load_spec
from tests.conftest import SPECS_DIR


def recipe(spec: str, variant: str | None = None):
    return load_spec(SPECS_DIR / f"{spec}.toml").variant(variant).recipe


def test_full_is_the_spec_as_written() -> None:
    r = recipe("dmsresnet")
    budget = make_budget(r, "full")
    assert budget.is_full and budget.epochs == 200 and compress(r, budget) is r


def test_short_is_a_tenth_with_schedules_compressed() -> None:
    r = recipe("resnet443-se")  # 30 epochs of a 200-epoch cosine
    budget = make_budget(r, "short")
    short = compress(r, budget)
    assert (budget.epochs, budget.train_images, budget.is_full) == (3, None, False)
    assert short.train.schedule.t_max == 20  # still cut short in the same proportion


def test_smoke_runs_every_phase_once_on_a_subset() -> None:
    r = recipe("resnet4323-se")
    budget = make_budget(r, "smoke")
    smoke = compress(r, budget)
    assert budget.epochs == 2 and budget.train_images == 1024
    assert [(p.name, p.epochs, p.mix) for p in smoke.train.phases] == [("mixup", 1, True), ("no-mixup", 1, False)]
    assert smoke.train.schedule.t_max == 2  # round(400 * 2 / 450)


def test_phases_scale_by_largest_remainder() -> None:
    r = recipe("resnet4323-se")
    phases = compress(r, make_budget(r, "full", epochs=45)).train.phases
    assert [p.epochs for p in phases] == [40, 5]


def test_overrides_and_subsets() -> None:
    r = recipe("dmsresnet")
    budget = make_budget(r, "full", epochs=5, subset=2000)
    assert (budget.epochs, budget.train_images, budget.val_images, budget.test_images) == (5, 2000, 500, 2000)
    assert not budget.is_full
    assert compress(r, budget).train.schedule.t_max == 5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"subset": 46_000}, "exceeds the 45000 training images"),
        ({"epochs": 0}, "--epochs must be at least 1"),
        ({"subset": 0}, "--subset must be at least 1"),
    ],
)
def test_impossible_budgets(kwargs: dict, message: str) -> None:
    with pytest.raises(BudgetError, match=message):
        make_budget(recipe("dmsresnet"), "full", **kwargs)


def test_too_few_epochs_for_the_phases() -> None:
    r = recipe("resnet4323-se")
    with pytest.raises(BudgetError, match="cannot hold the recipe's 2 training phases"):
        compress(r, make_budget(r, "full", epochs=1))
