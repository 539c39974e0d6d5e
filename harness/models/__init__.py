"""Stage 3, models. Takes a recipe's `[model]` section; gives the network (resnet.py, from blocks.py
and init.py). This file is the model registry: an `arch` name -> its config section and builder."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from harness.common.registry import Registry
from harness.common.schema import Section
from harness.models.config import CifarResNetConfig

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class ModelEntry:
    config: type[Section]
    build: Callable[[Section], nn.Module]  # imports its module when called: specs are read without PyTorch


def _cifar_resnet(cfg: Section) -> nn.Module:
    from harness.models.resnet import CifarResNet

    return CifarResNet(cfg)  # type: ignore[arg-type]


MODELS: Registry[ModelEntry] = Registry("model")
MODELS.register("cifar_resnet")(ModelEntry(CifarResNetConfig, _cifar_resnet))


def build_model(cfg: Section) -> nn.Module:
    """Build the network a validated `[model]` section describes."""
    return MODELS[cfg.arch].build(cfg)  # type: ignore[attr-defined]


def count_params(model: nn.Module) -> int:
    """Trainable parameters, the count every report quotes."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every BatchNorm that follows a convolution into it, for a frozen model in eval mode.

    The outputs are the same up to float rounding, with one pass over each activation fewer: a teacher
    only ever runs forward, so its BatchNorms are fixed affine maps. Each block names the pairs where the
    BN follows the conv (`FOLDABLE`): in a pre-activation block most BNs come before their conv.
    """
    from torch import nn
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for module in model.modules():
        for conv_name, bn_name in getattr(module, "FOLDABLE", ()):
            conv, bn = getattr(module, conv_name), getattr(module, bn_name)
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                setattr(module, conv_name, fuse_conv_bn_eval(conv, bn))
                setattr(module, bn_name, nn.Identity())
        if isinstance(module, nn.Sequential):  # the stem and projection shortcuts: conv, then BN
            for i in range(len(module) - 1):
                if isinstance(module[i], nn.Conv2d) and isinstance(module[i + 1], nn.BatchNorm2d):
                    module[i] = fuse_conv_bn_eval(module[i], module[i + 1])
                    module[i + 1] = nn.Identity()
    return model
