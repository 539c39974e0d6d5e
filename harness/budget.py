"""Training budgets: the spec as written (full), or compressed in time and data for CPU runs and tests.

A compressed budget scales every epoch count of the recipe by one factor (epochs, schedule horizons,
warm-up, step sizes, phases), so that a 30-of-200-epoch cosine stays cut short in the same proportion.
Only a full budget on official CIFAR-10 counts as a reproduction of a claim.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Literal

from harness.cifar10 import SPLIT_SIZES
from harness.errors import HarnessError

if TYPE_CHECKING:  # budget.py stays free of PyTorch: the CLI reads PROFILES before it loads anything
    from harness.spec import Phase, Recipe

Profile = Literal["full", "short", "demo", "smoke"]
PROFILES: tuple[Profile, ...] = ("full", "short", "demo", "smoke")
SHORT_FRACTION = 0.1  # short: a tenth of the epochs on all the data
SMOKE_TRAIN_IMAGES = 1024  # smoke: a small subset, and one epoch per training phase: proves the code path
# demo: enough to learn visibly in minutes on a laptop CPU (resnet10-onecycle: 56.6% on the JPEG copy in
# 5m 23s on 2 cores at bf16, measured 2026-11-29), and never a reproduction
DEMO_TRAIN_IMAGES = 12_288
DEMO_EPOCHS = 3
DEMO_VAL_IMAGES = 1_024
TEST_IMAGES = SPLIT_SIZES["test"]


class BudgetError(HarnessError):
    """A budget that cannot be applied to a recipe (e.g. more images than the dataset has)."""


@dataclass(frozen=True)
class Budget:
    profile: Profile
    epochs: int
    spec_epochs: int
    train_images: int | None  # None: every image left after the validation split
    val_images: int | None  # None: the whole validation split
    test_images: int | None  # None: all 10,000

    @property
    def time_scale(self) -> float:
        return self.epochs / self.spec_epochs

    @property
    def is_full(self) -> bool:
        """The recipe's own epochs on all the data: the only budget that can reproduce a claim."""
        return self.epochs == self.spec_epochs and self.train_images is None and self.test_images is None

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "time_scale": self.time_scale, "is_full": self.is_full}


def make_budget(recipe: Recipe, profile: Profile, epochs: int | None = None, subset: int | None = None) -> Budget:
    """The budget a profile gives this recipe, with optional --epochs and --subset overrides."""
    spec_epochs = recipe.train.epochs
    at_least = max(1, len(recipe.train.phases))
    if profile == "full":
        default_epochs, train = spec_epochs, None
    elif profile == "short":
        default_epochs, train = max(at_least, math.ceil(spec_epochs * SHORT_FRACTION)), None
    elif profile == "demo":
        default_epochs, train = max(at_least, min(DEMO_EPOCHS, spec_epochs)), DEMO_TRAIN_IMAGES
    else:
        default_epochs, train = at_least, SMOKE_TRAIN_IMAGES
    if epochs is not None and epochs < 1:
        raise BudgetError(f"--epochs must be at least 1, got {epochs}")
    if subset is not None and subset < 1:
        raise BudgetError(f"--subset must be at least 1, got {subset}")
    train = subset if subset is not None else train
    available = recipe.data.train_size
    if train is not None and train > available:
        raise BudgetError(f"--subset {train} exceeds the {available} training images left after the validation split")
    val = None if train is None or recipe.data.val_size == 0 else min(recipe.data.val_size, max(64, train // 4))
    test = None if train is None else min(TEST_IMAGES, max(256, train))
    if profile == "demo":  # fewer validation images, every test image: the figure shown is the demo's point
        val = None if recipe.data.val_size == 0 else min(recipe.data.val_size, DEMO_VAL_IMAGES)
        test = None
    return Budget(profile, epochs or default_epochs, spec_epochs, train, val, test)


def compress(recipe: Recipe, budget: Budget) -> Recipe:
    """The recipe scaled to the budget; unchanged for the recipe's own epochs and data.

    Epoch counts (epochs, phases, epoch-stepped schedules) scale with the epochs; a batch-stepped
    schedule's horizon scales with the optimizer steps the budget actually takes, so that a OneCycle
    on a data subset still completes its cycle. Warm-ups keep their starting factor (schedule.scaled).
    """
    spec_steps = recipe.train.epochs * _steps_per_epoch(recipe.data.train_size, recipe.train.batch_size)
    steps = budget.epochs * _steps_per_epoch(budget.train_images or recipe.data.train_size, recipe.train.batch_size)
    if budget.epochs == recipe.train.epochs and steps == spec_steps:
        return recipe
    train = recipe.train
    phases = _scaled_phases(train.phases, budget.epochs)
    schedule = train.schedule.scaled(budget.time_scale, steps / spec_steps)
    update = {"epochs": budget.epochs, "schedule": schedule, "phases": phases}
    return recipe.model_copy(update={"train": train.model_copy(update=update)})


def _steps_per_epoch(images: int, batch_size: int) -> int:
    return math.ceil(images / batch_size)


def check_fits(budget: Budget, recipe: Recipe, train_count: int, test_count: int, source: str) -> None:
    """Raise BudgetError unless the data has the images the split and the budget take."""
    needed = recipe.data.val_size + (budget.train_images or 1)
    if train_count < needed:
        raise BudgetError(
            f"{source}: has {train_count:,} training images, but the validation split ({recipe.data.val_size:,}) "
            f"and the training set ({budget.train_images or 'at least 1'}) need {needed:,}"
        )
    if test_count < (budget.test_images or 1):
        raise BudgetError(f"{source}: has {test_count:,} test images, the budget tests on {budget.test_images:,}")


def _scaled_phases(phases: tuple[Phase, ...], epochs: int) -> tuple[Phase, ...]:
    """Phase lengths in proportion (largest remainder), each phase kept with at least one epoch."""
    if not phases:
        return phases
    total = sum(p.epochs for p in phases)
    if epochs < len(phases):
        raise BudgetError(f"{epochs} epochs cannot hold the recipe's {len(phases)} training phases")
    exact = [p.epochs * epochs / total for p in phases]
    sizes = [max(1, math.floor(x)) for x in exact]
    while sum(sizes) > epochs:
        i = max((i for i in range(len(sizes)) if sizes[i] > 1), key=lambda i: sizes[i] - exact[i])
        sizes[i] -= 1
    while sum(sizes) < epochs:
        i = max(range(len(sizes)), key=lambda i: exact[i] - sizes[i])
        sizes[i] += 1
    return tuple(p.model_copy(update={"epochs": n}) for p, n in zip(phases, sizes, strict=True))
