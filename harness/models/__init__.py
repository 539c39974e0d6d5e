"""The model registry: an `arch` name -> its config section and builder."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from harness.models.resnet import CifarResNet, CifarResNetConfig
from harness.registry import Registry
from harness.schema import Section


@dataclass(frozen=True)
class ModelEntry:
    config: type[Section]
    build: Callable[[Section], nn.Module]


MODELS: Registry[ModelEntry] = Registry("model")
MODELS.register("cifar_resnet")(ModelEntry(CifarResNetConfig, CifarResNet))  # type: ignore[arg-type]


def build_model(cfg: Section) -> nn.Module:
    """Build the network a validated `[model]` section describes."""
    return MODELS[cfg.arch].build(cfg)  # type: ignore[attr-defined]


def count_params(model: nn.Module) -> int:
    """Trainable parameters, the count every report quotes."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
