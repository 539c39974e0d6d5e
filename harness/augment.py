"""Augmentation ops, by name, in the order a spec lists them; each maps to a torchvision v2 transform.

Ops run on uint8 CHW images, as PIL-based pipelines would, until the first op that needs float input
(random erasing, which 002 applies after ToTensor); normalisation always comes last.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
import torchvision.transforms.v2 as T
from pydantic import Field
from torch import nn

from harness.registry import Registry
from harness.schema import Section

OPS: Registry[type[Section]] = Registry("augment op")


class _Op(Section):
    needs_float: ClassVar[bool] = False

    def torchvision(self) -> nn.Module:
        raise NotImplementedError

    def problems(self) -> list[tuple[str, str]]:
        """Cross-field checks, as (key, message) pairs."""
        return []


def _ordered_pair(key: str, pair: tuple[float, float], low: float, high: float) -> list[tuple[str, str]]:
    if not (low <= pair[0] <= pair[1] <= high):
        return [(key, f"expected {low} <= first <= second <= {high}, got {list(pair)}")]
    return []


@OPS.register("random_crop")
class RandomCrop(_Op):
    op: Literal["random_crop"]
    size: int = Field(32, gt=0)
    padding: int = Field(0, ge=0, le=32)
    padding_mode: Literal["constant", "reflect", "edge", "symmetric"] = "constant"
    fill: int = Field(0, ge=0, le=255)

    def torchvision(self) -> nn.Module:
        return T.RandomCrop(self.size, padding=self.padding, padding_mode=self.padding_mode, fill=self.fill)


@OPS.register("hflip")
class HorizontalFlip(_Op):
    op: Literal["hflip"]
    p: float = Field(0.5, ge=0.0, le=1.0)

    def torchvision(self) -> nn.Module:
        return T.RandomHorizontalFlip(self.p)


@OPS.register("rotation")
class Rotation(_Op):
    """RandomRotation(degrees): uniform angle in [-degrees, degrees], nearest, zero fill."""

    op: Literal["rotation"]
    degrees: float = Field(gt=0, le=180)
    fill: int = Field(0, ge=0, le=255)

    def torchvision(self) -> nn.Module:
        return T.RandomRotation(self.degrees, fill=self.fill)


@OPS.register("color_jitter")
class ColorJitter(_Op):
    op: Literal["color_jitter"]
    brightness: float = Field(0.0, ge=0)
    contrast: float = Field(0.0, ge=0)
    saturation: float = Field(0.0, ge=0)
    hue: float = Field(0.0, ge=0, le=0.5)

    def torchvision(self) -> nn.Module:
        return T.ColorJitter(self.brightness, self.contrast, self.saturation, self.hue)


@OPS.register("grayscale")
class Grayscale(_Op):
    op: Literal["grayscale"]
    p: float = Field(0.1, ge=0.0, le=1.0)

    def torchvision(self) -> nn.Module:
        return T.RandomGrayscale(self.p)


@OPS.register("autocontrast")
class Autocontrast(_Op):
    op: Literal["autocontrast"]
    p: float = Field(0.5, ge=0.0, le=1.0)

    def torchvision(self) -> nn.Module:
        return T.RandomAutocontrast(self.p)


@OPS.register("sharpness")
class Sharpness(_Op):
    op: Literal["sharpness"]
    factor: float = Field(ge=0, le=1000)
    p: float = Field(0.5, ge=0.0, le=1.0)

    def torchvision(self) -> nn.Module:
        return T.RandomAdjustSharpness(self.factor, self.p)


@OPS.register("autoaugment")
class AutoAugment(_Op):
    op: Literal["autoaugment"]
    policy: Literal["cifar10", "imagenet", "svhn"] = "cifar10"

    def torchvision(self) -> nn.Module:
        return T.AutoAugment(T.AutoAugmentPolicy(self.policy))


@OPS.register("gaussian_blur")
class GaussianBlur(_Op):
    op: Literal["gaussian_blur"]
    kernel_size: int = Field(3, gt=0, le=31)
    sigma: tuple[float, float] = (0.1, 2.0)
    p: float = Field(1.0, ge=0.0, le=1.0)

    def torchvision(self) -> nn.Module:
        return T.RandomApply([T.GaussianBlur(self.kernel_size, self.sigma)], p=self.p)

    def problems(self) -> list[tuple[str, str]]:
        odd = [] if self.kernel_size % 2 else [("kernel_size", f"must be odd, got {self.kernel_size}")]
        return odd + _ordered_pair("sigma", self.sigma, 1e-3, 100.0)


@OPS.register("random_erasing")
class RandomErasing(_Op):
    """Erases a box after conversion to float in [0, 1]; value 'random' draws N(0, 1) per pixel."""

    needs_float: ClassVar[bool] = True
    op: Literal["random_erasing"]
    p: float = Field(0.5, ge=0.0, le=1.0)
    scale: tuple[float, float] = (0.02, 0.33)
    ratio: tuple[float, float] = (0.3, 3.3)
    value: float | Literal["random"] = 0.0

    def torchvision(self) -> nn.Module:
        return T.RandomErasing(self.p, self.scale, self.ratio, self.value)

    def problems(self) -> list[tuple[str, str]]:
        return _ordered_pair("scale", self.scale, 1e-6, 1.0) + _ordered_pair("ratio", self.ratio, 1e-3, 1e3)


def torchvision_pipeline(ops: tuple[_Op, ...], mean: tuple[float, ...], std: tuple[float, ...]) -> T.Compose:
    """The exact per-sample pipeline of a spec: ops on uint8, then float in [0, 1], then Normalize."""
    steps: list[nn.Module] = []
    is_float = False
    for op in ops:
        if op.needs_float and not is_float:
            steps.append(T.ToDtype(torch.float32, scale=True))
            is_float = True
        steps.append(op.torchvision())
    if not is_float:
        steps.append(T.ToDtype(torch.float32, scale=True))
    steps.append(T.Normalize(mean, std))
    return T.Compose(steps)
