"""Weight-initialisation schemes, by name, as the reports' code applies them."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from harness.common.lazy import lazy
from harness.common.registry import Registry

if TYPE_CHECKING:
    from torch import nn
else:
    nn = lazy("torch.nn")  # loaded on first use: specs name their init scheme without PyTorch

Init = Callable[["nn.Module"], None]
INITS: Registry[Init] = Registry("init scheme")


@INITS.register("pytorch_default")
def pytorch_default(model: nn.Module) -> None:
    """Leave PyTorch's own layer initialisation (reports 000, 001, 004 and Thakur et al.)."""


@INITS.register("kaiming_fan_out")
def kaiming_fan_out(model: nn.Module) -> None:
    """Report 002: Kaiming-normal (fan_out, relu) convs, Kaiming-normal linear, zero biases, BN 1/0."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.Linear):
            nn.init.kaiming_normal_(module.weight)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
        if isinstance(module, (nn.Conv2d, nn.Linear, nn.BatchNorm2d)) and module.bias is not None:
            nn.init.zeros_(module.bias)


@INITS.register("kaiming_fan_in_xavier_fc")
def kaiming_fan_in_xavier_fc(model: nn.Module) -> None:
    """Report 003: Kaiming-normal (fan_in, relu) convs, Xavier-normal (gain sqrt 2) linear, zero biases."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
        elif isinstance(module, nn.Linear):
            nn.init.xavier_normal_(module.weight, gain=math.sqrt(2.0))
        if isinstance(module, (nn.Conv2d, nn.Linear)) and module.bias is not None:
            nn.init.zeros_(module.bias)


@INITS.register("kaiming_fan_out_xavier_fc")
def kaiming_fan_out_xavier_fc(model: nn.Module) -> None:
    """Report 003's grid ResNet-10 (models/resnet10.py): Kaiming-normal (fan_out, relu) conv weights with PyTorch's
    default conv biases, Xavier-normal (gain sqrt 2) linear weight, zero linear bias; BN left as built."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.Linear):
            nn.init.xavier_normal_(module.weight, gain=nn.init.calculate_gain("relu"))
            if module.bias is not None:
                nn.init.zeros_(module.bias)


@INITS.register("kaiming_fan_in")
def kaiming_fan_in(model: nn.Module) -> None:
    """He init as report 002's text states it: N(0, 2 / n_in) for conv and linear weights, zero biases, BN 1/0."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
        if isinstance(module, (nn.Conv2d, nn.Linear, nn.BatchNorm2d)) and module.bias is not None:
            nn.init.zeros_(module.bias)
