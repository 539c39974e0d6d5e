"""Optimizers and learning-rate schedules, by name, with every argument the reports' code passes.

Schedules are PyTorch's own classes, as the reports use them, so that edge behaviour (OneCycle's
momentum cycling, cosine continuing past T_max) matches the released code.
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from harness.common.lazy import lazy
from harness.common.registry import Registry
from harness.common.schema import Section

if TYPE_CHECKING:
    from torch import nn
    from torch.optim.lr_scheduler import LRScheduler

torch = lazy("torch")  # loaded on first use: specs name and check these without PyTorch

OPTIMIZERS: Registry[type[Section]] = Registry("optimizer")
SCHEDULES: Registry[type[Section]] = Registry("schedule")

WeightDecayOn = Literal["all", "weights_only"]


def param_groups(model: nn.Module, weight_decay: float, on: WeightDecayOn) -> list[dict]:
    """One group with decay on everything (all five reports), or decay on conv/linear weights only."""
    if on == "all":
        return [{"params": [p for p in model.parameters() if p.requires_grad], "weight_decay": weight_decay}]
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class _Optimizer(Section):
    lr: float = Field(gt=0)
    weight_decay: float = Field(0.0, ge=0)
    weight_decay_on: WeightDecayOn = "all"

    def build(self, model: nn.Module, fused: bool = False) -> torch.optim.Optimizer:
        """The optimizer over the model's parameters; `fused` selects PyTorch's fused CUDA kernel where
        one exists (same arithmetic, fewer launches)."""
        raise NotImplementedError


@OPTIMIZERS.register("sgd")
class SGD(_Optimizer):
    name: Literal["sgd"]
    momentum: float = Field(0.0, ge=0, lt=1)
    dampening: float = Field(0.0, ge=0, lt=1)
    nesterov: bool = False

    def build(self, model: nn.Module, fused: bool = False) -> torch.optim.Optimizer:
        groups = param_groups(model, self.weight_decay, self.weight_decay_on)
        return torch.optim.SGD(
            groups,
            lr=self.lr,
            momentum=self.momentum,
            dampening=self.dampening,
            nesterov=self.nesterov,
            fused=fused or None,
        )


@OPTIMIZERS.register("adam")
class Adam(_Optimizer):
    name: Literal["adam"]
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0)

    def build(self, model: nn.Module, fused: bool = False) -> torch.optim.Optimizer:
        groups = param_groups(model, self.weight_decay, self.weight_decay_on)
        return torch.optim.Adam(groups, lr=self.lr, betas=self.betas, eps=self.eps, fused=fused or None)


@OPTIMIZERS.register("adamw")
class AdamW(Adam):
    name: Literal["adamw"]  # type: ignore[assignment]

    def build(self, model: nn.Module, fused: bool = False) -> torch.optim.Optimizer:
        groups = param_groups(model, self.weight_decay, self.weight_decay_on)
        return torch.optim.AdamW(groups, lr=self.lr, betas=self.betas, eps=self.eps, fused=fused or None)


@OPTIMIZERS.register("adadelta")
class Adadelta(_Optimizer):
    name: Literal["adadelta"]
    rho: float = Field(0.9, gt=0, lt=1)
    eps: float = Field(1e-6, gt=0)

    def build(self, model: nn.Module, fused: bool = False) -> torch.optim.Optimizer:
        groups = param_groups(model, self.weight_decay, self.weight_decay_on)  # Adadelta has no fused kernel
        return torch.optim.Adadelta(groups, lr=self.lr, rho=self.rho, eps=self.eps)


StepUnit = Literal["epoch", "batch"]


class _Schedule(Section):
    """A learning-rate schedule: PyTorch's own scheduler (`main`), stepped per epoch or per batch, with an
    optional constant warm-up factor for its first `warmup_steps` steps (torch's ConstantLR, chained
    multiplicatively: ResNet-110's 0.01-then-0.1 start is warmup_factor 0.1 for 400 steps)."""

    step: StepUnit = "epoch"
    warmup_steps: int | None = Field(None, gt=0, le=10**9, description="in units of `step`")
    warmup_factor: float | None = Field(None, gt=0, le=1)

    def build(self, optimizer: torch.optim.Optimizer, epochs: int, steps_per_epoch: int) -> LRScheduler:
        main = self.main(optimizer, epochs, steps_per_epoch)
        if not self.warmup_steps:
            return main
        warmup = torch.optim.lr_scheduler.ConstantLR(optimizer, self.warmup_factor, total_iters=self.warmup_steps)
        return torch.optim.lr_scheduler.ChainedScheduler([main, warmup])

    def main(self, optimizer: torch.optim.Optimizer, epochs: int, steps_per_epoch: int) -> LRScheduler:
        raise NotImplementedError

    def horizon_epochs(self, steps_per_epoch: int) -> float | None:
        """Epochs after which the schedule has run its course, or None when it has no end."""
        return None

    def problems(self) -> list[tuple[str, str]]:
        if (self.warmup_steps is None) != (self.warmup_factor is None):
            return [("warmup_steps", "warmup_steps and warmup_factor go together: set both or neither")]
        return []

    def scaled(self, epoch_factor: float, step_factor: float) -> _Schedule:
        """The same schedule compressed for short and smoke budgets: counts in epochs by `epoch_factor`,
        counts in optimizer steps by `step_factor` (the budget's steps over the recipe's). A warm-up keeps
        its factor and at least one step."""
        scaled = self.compressed(self.factor(epoch_factor, step_factor))
        if not self.warmup_steps:
            return scaled
        return scaled.model_copy(
            update={"warmup_steps": _scale(self.warmup_steps, self.factor(epoch_factor, step_factor))}
        )

    def compressed(self, factor: float) -> _Schedule:
        """This schedule's own horizons scaled by `factor` (its unit's)."""
        return self

    def factor(self, epoch_factor: float, step_factor: float) -> float:
        """The compression factor for this schedule's own unit (`step`)."""
        return epoch_factor if self.step == "epoch" else step_factor


def _scale(value: int, factor: float, minimum: int = 1) -> int:
    return max(minimum, round(value * factor))


@SCHEDULES.register("constant")
class Constant(_Schedule):
    name: Literal["constant"]

    def main(self, optimizer: torch.optim.Optimizer, epochs: int, steps_per_epoch: int) -> LRScheduler:
        # ConstantLR with factor 1: the rate as given, and chainable with a warm-up (LambdaLR is not)
        return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)


@SCHEDULES.register("cosine")
class Cosine(_Schedule):
    """CosineAnnealingLR; past t_max it rises again, as report 004's second phase shows."""

    name: Literal["cosine"]
    t_max: int = Field(gt=0, description="in units of `step`")
    eta_min: float = Field(0.0, ge=0)

    def main(self, optimizer: torch.optim.Optimizer, epochs: int, steps_per_epoch: int) -> LRScheduler:
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.t_max, eta_min=self.eta_min)

    def horizon_epochs(self, steps_per_epoch: int) -> float | None:
        return self.t_max if self.step == "epoch" else self.t_max / steps_per_epoch

    def compressed(self, factor: float) -> _Schedule:
        return self.model_copy(update={"t_max": _scale(self.t_max, factor)})


@SCHEDULES.register("warmup_cosine")
class WarmupCosine(_Schedule):
    """Report 002: factor (e+1)/warmup for e < warmup, then 0.5(1 + cos(pi (e - warmup) / decay)).

    The warm-up is a line from its start factor (1/warmup, 0.1 for report 002's 10 epochs) at epoch 0 to 1 at
    its last epoch. A compressed warm-up keeps the recipe's start factor (`warmup_start_factor`), so a
    one-epoch warm-up still starts at 0.1x and never at the full rate.
    """

    name: Literal["warmup_cosine"]
    warmup_epochs: int = Field(ge=0)
    decay_epochs: int = Field(gt=0)
    warmup_start_factor: float | None = Field(None, gt=0, le=1, description="default 1 / warmup_epochs")

    def main(self, optimizer: torch.optim.Optimizer, epochs: int, steps_per_epoch: int) -> LRScheduler:
        warmup, decay = self.warmup_epochs, self.decay_epochs
        start = self.warmup_start_factor or (1 / warmup if warmup else 1.0)

        def factor(epoch: int) -> float:
            if epoch < warmup and self.warmup_start_factor is None:
                return (epoch + 1) / warmup  # the recipe's own arithmetic, to the last bit
            if epoch < warmup:  # compressed: the same line from the same start, over fewer epochs
                return start + (1 - start) * epoch / (warmup - 1) if warmup > 1 else start
            return 0.5 * (1 + math.cos(math.pi * (epoch - warmup) / decay))

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

    def horizon_epochs(self, steps_per_epoch: int) -> float | None:
        return self.warmup_epochs + self.decay_epochs

    def compressed(self, factor: float) -> _Schedule:
        if not self.warmup_epochs:
            return self.model_copy(update={"decay_epochs": _scale(self.decay_epochs, factor)})
        return self.model_copy(
            update={
                "warmup_epochs": _scale(self.warmup_epochs, factor),  # at least one: the shape survives
                "decay_epochs": _scale(self.decay_epochs, factor),
                "warmup_start_factor": self.warmup_start_factor or 1 / self.warmup_epochs,
            }
        )

    def problems(self) -> list[tuple[str, str]]:
        found = [("step", 'warmup_cosine counts epochs; use step = "epoch"')] if self.step != "epoch" else []
        return found + _own_warmup(self) + super().problems()


@SCHEDULES.register("onecycle")
class OneCycle(_Schedule):
    """OneCycleLR with PyTorch's defaults spelled out; total_steps defaults to epochs x batches."""

    name: Literal["onecycle"]
    step: StepUnit = "batch"
    max_lr: float = Field(gt=0)
    total_steps: int | None = Field(None, gt=0)
    pct_start: float = Field(0.3, gt=0, lt=1)
    anneal_strategy: Literal["cos", "linear"] = "cos"
    cycle_momentum: bool = True
    base_momentum: float = Field(0.85, ge=0, lt=1)
    max_momentum: float = Field(0.95, ge=0, lt=1)
    div_factor: float = Field(25.0, gt=0)
    final_div_factor: float = Field(1e4, gt=0)
    three_phase: bool = False

    def main(self, optimizer: torch.optim.Optimizer, epochs: int, steps_per_epoch: int) -> LRScheduler:
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=self.max_lr,
            total_steps=self.total_steps or epochs * steps_per_epoch,
            pct_start=self.pct_start,
            anneal_strategy=self.anneal_strategy,
            cycle_momentum=self.cycle_momentum,
            base_momentum=self.base_momentum,
            max_momentum=self.max_momentum,
            div_factor=self.div_factor,
            final_div_factor=self.final_div_factor,
            three_phase=self.three_phase,
        )

    def horizon_epochs(self, steps_per_epoch: int) -> float | None:
        return None if self.total_steps is None else self.total_steps / steps_per_epoch

    def compressed(self, factor: float) -> _Schedule:
        # Without total_steps the schedule already spans whatever epochs and batches the run has.
        if self.total_steps is None:
            return self
        return self.model_copy(update={"total_steps": _scale(self.total_steps, factor)})

    def problems(self) -> list[tuple[str, str]]:
        found = [("step", 'OneCycleLR steps per batch; use step = "batch"')] if self.step != "batch" else []
        return found + _own_warmup(self) + super().problems()


@SCHEDULES.register("step")
class Step(_Schedule):
    """StepLR: multiply the rate by gamma every step_size units (report 003's grid: /3 every 20 epochs)."""

    name: Literal["step"]
    step_size: int = Field(gt=0)
    gamma: float = Field(gt=0, le=1)

    def main(self, optimizer: torch.optim.Optimizer, epochs: int, steps_per_epoch: int) -> LRScheduler:
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=self.step_size, gamma=self.gamma)

    def compressed(self, factor: float) -> _Schedule:
        return self.model_copy(update={"step_size": _scale(self.step_size, factor)})


@SCHEDULES.register("multistep")
class MultiStep(_Schedule):
    """MultiStepLR: multiply the rate by gamma at each milestone, counted in the schedule's own steps
    (wide ResNets: x0.2 at epochs 60, 120 and 160)."""

    name: Literal["multistep"]
    milestones: tuple[int, ...] = Field(min_length=1)
    gamma: float = Field(0.1, gt=0, le=1)

    def main(self, optimizer: torch.optim.Optimizer, epochs: int, steps_per_epoch: int) -> LRScheduler:
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(self.milestones), gamma=self.gamma)

    def compressed(self, factor: float) -> _Schedule:
        return self.model_copy(update={"milestones": tuple(_scale(m, factor) for m in self.milestones)})

    def problems(self) -> list[tuple[str, str]]:
        ordered = all(a < b for a, b in itertools.pairwise((0, *self.milestones)))
        found = [] if ordered else [("milestones", f"must increase from 1, got {list(self.milestones)}")]
        return found + super().problems()


def _own_warmup(schedule: _Schedule) -> list[tuple[str, str]]:
    """OneCycle and report 002's warm-up cosine set the rate outright each step, so a chained warm-up would be lost."""
    if schedule.warmup_steps is not None or schedule.warmup_factor is not None:
        return [("warmup_steps", f"{schedule.name} has its own warm-up; a warm-up factor cannot be chained to it")]
    return []
