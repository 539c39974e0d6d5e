"""Budgets: profiles, overrides, and schedules and phases compressed in proportion."""

from __future__ import annotations

import pytest

from harness.spec import load_spec
from harness.train.request import BudgetError, compress, make_budget
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


def test_002s_warm_up_survives_the_smoke_budget() -> None:
    r = recipe("se-resnet3343")  # 10 warm-up epochs from 0.1x, then 290 of cosine
    smoke = compress(r, make_budget(r, "smoke"))
    schedule = smoke.train.schedule
    assert (smoke.train.epochs, schedule.warmup_epochs, schedule.warmup_start_factor) == (1, 1, pytest.approx(0.1))


def test_a_batch_stepped_horizon_scales_with_the_steps_the_budget_takes() -> None:
    r = recipe("resnet10")
    r = r.model_copy(
        update={
            "train": r.train.model_copy(
                update={"schedule": r.train.schedule.model_copy(update={"total_steps": 17_600})}
            )
        }
    )
    # smoke: 1 epoch of 1,024 images at batch 256 = 4 optimizer steps, of the recipe's 100 x 176 = 17,600
    assert compress(r, make_budget(r, "smoke")).train.schedule.total_steps == 4


@pytest.mark.parametrize(
    ("train_count", "test_count", "message"),
    [
        (5_000, 10_000, "has 5,000 training images, but the validation split (5,000) and the training set"),
        (7_000, 100, "has 100 test images, the budget tests on 1,024"),
    ],
)
def test_data_smaller_than_the_split_and_budget_is_refused(train_count: int, test_count: int, message: str) -> None:
    from harness.train.request import check_fits

    r = recipe("dmsresnet")
    with pytest.raises(BudgetError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_fits(make_budget(r, "smoke"), r, train_count, test_count, "tiny")


@pytest.mark.parametrize(
    ("subset", "val", "test"),
    [(16, 64, 64), (64, 64, 64), (100, 64, 100), (300, 75, 300), (12_000, 3_000, 10_000), (40_000, 5_000, 10_000)],
)
def test_a_subset_scores_a_quarter_of_it_in_validation_and_all_of_it_in_test_at_least_64_each(
    subset: int, val: int, test: int
) -> None:
    # The README's rule, by hand: validation N/4 (at most the recipe's 5,000-image split), test N (at most
    # 10,000), each at least 64 images
    budget = make_budget(recipe("resnet10"), "smoke", subset=subset)
    assert (budget.train_images, budget.val_images, budget.test_images) == (subset, val, test)
