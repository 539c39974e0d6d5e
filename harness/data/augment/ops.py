"""Augmentation ops, by name: each knows its per-sample torchvision v2 transform and its batched form.

A spec lists ops in order; pipeline.py runs them. `torchvision()` is the exact per-sample transform the
reports' code applies; `batched(x, gen)` applies the same distribution to a whole batch on its device
(kernels.py), drawing every random parameter per image. Ops with `needs_float` (random erasing, which
report 002 applies after ToTensor) run on floats in [0, 1]; the others on uint8.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from harness.common.lazy import lazy
from harness.common.registry import Registry
from harness.common.schema import Section

if TYPE_CHECKING:
    import torch
    from torch import nn

    Batch = torch.Tensor  # uint8 N x C x H x W (float in [0, 1] for needs_float ops)

# loaded on first use: a spec names and checks its ops without PyTorch
T = lazy("torchvision.transforms.v2")
kernels = lazy("harness.data.augment.kernels")

OPS: Registry[type[Op]] = Registry("augment op")


class Op(Section):
    """An augmentation op; every registered op defines both forms."""

    needs_float: ClassVar[bool] = False

    def torchvision(self) -> nn.Module:
        """The per-sample torchvision v2 transform (a CHW image in, the same kind out)."""
        raise NotImplementedError

    def batched(self, x: Batch, gen: torch.Generator) -> Batch:
        """The same distribution on a whole batch, random parameters drawn per image from `gen`."""
        raise NotImplementedError

    def problems(self) -> list[tuple[str, str]]:
        """Cross-field checks, as (key, message) pairs."""
        return []


def _ordered_pair(key: str, pair: tuple[float, float], low: float, high: float) -> list[tuple[str, str]]:
    if not (low <= pair[0] <= pair[1] <= high):
        return [(key, f"expected {low} <= first <= second <= {high}, got {list(pair)}")]
    return []


@OPS.register("random_crop")
class RandomCrop(Op):
    op: Literal["random_crop"]
    size: int = Field(32, gt=0)
    padding: int = Field(0, ge=0, le=32)
    padding_mode: Literal["constant", "reflect", "edge", "symmetric"] = "constant"
    fill: int = Field(0, ge=0, le=255)

    def torchvision(self) -> nn.Module:
        return T.RandomCrop(self.size, padding=self.padding, padding_mode=self.padding_mode, fill=self.fill)

    def batched(self, x: Batch, gen: torch.Generator) -> Batch:
        return kernels.random_crop(x, self, gen)


@OPS.register("hflip")
class HorizontalFlip(Op):
    op: Literal["hflip"]
    p: float = Field(0.5, ge=0.0, le=1.0)

    def torchvision(self) -> nn.Module:
        return T.RandomHorizontalFlip(self.p)

    def batched(self, x: Batch, gen: torch.Generator) -> Batch:
        return kernels.hflip(x, self, gen)


@OPS.register("rotation")
class Rotation(Op):
    """RandomRotation(degrees): uniform angle in [-degrees, degrees], nearest, zero fill."""

    op: Literal["rotation"]
    degrees: float = Field(gt=0, le=180)
    fill: int = Field(0, ge=0, le=255)

    def torchvision(self) -> nn.Module:
        return T.RandomRotation(self.degrees, fill=self.fill)

    def batched(self, x: Batch, gen: torch.Generator) -> Batch:
        return kernels.rotation(x, self, gen)


@OPS.register("color_jitter")
class ColorJitter(Op):
    op: Literal["color_jitter"]
    brightness: float = Field(0.0, ge=0)
    contrast: float = Field(0.0, ge=0)
    saturation: float = Field(0.0, ge=0)
    hue: float = Field(0.0, ge=0, le=0.5)

    def torchvision(self) -> nn.Module:
        return T.ColorJitter(self.brightness, self.contrast, self.saturation, self.hue)

    def batched(self, x: Batch, gen: torch.Generator) -> Batch:
        return kernels.color_jitter(x, self, gen)


@OPS.register("grayscale")
class Grayscale(Op):
    op: Literal["grayscale"]
    p: float = Field(0.1, ge=0.0, le=1.0)

    def torchvision(self) -> nn.Module:
        return T.RandomGrayscale(self.p)

    def batched(self, x: Batch, gen: torch.Generator) -> Batch:
        return kernels.grayscale(x, self, gen)


@OPS.register("autocontrast")
class Autocontrast(Op):
    op: Literal["autocontrast"]
    p: float = Field(0.5, ge=0.0, le=1.0)

    def torchvision(self) -> nn.Module:
        return T.RandomAutocontrast(self.p)

    def batched(self, x: Batch, gen: torch.Generator) -> Batch:
        return kernels.autocontrast(x, self, gen)


@OPS.register("sharpness")
class Sharpness(Op):
    op: Literal["sharpness"]
    factor: float = Field(ge=0, le=1000)
    p: float = Field(0.5, ge=0.0, le=1.0)

    def torchvision(self) -> nn.Module:
        return T.RandomAdjustSharpness(self.factor, self.p)

    def batched(self, x: Batch, gen: torch.Generator) -> Batch:
        return kernels.sharpness(x, self, gen)


@OPS.register("autoaugment")
class AutoAugment(Op):
    op: Literal["autoaugment"]
    policy: Literal["cifar10", "imagenet", "svhn"] = "cifar10"

    def torchvision(self) -> nn.Module:
        return T.AutoAugment(T.AutoAugmentPolicy(self.policy))

    def batched(self, x: Batch, gen: torch.Generator) -> Batch:
        return kernels.auto_augment(self.policy)(x, gen)


@OPS.register("gaussian_blur")
class GaussianBlur(Op):
    op: Literal["gaussian_blur"]
    kernel_size: int = Field(3, gt=0, le=31)
    sigma: tuple[float, float] = (0.1, 2.0)
    p: float = Field(1.0, ge=0.0, le=1.0)

    def torchvision(self) -> nn.Module:
        return T.RandomApply([T.GaussianBlur(self.kernel_size, self.sigma)], p=self.p)

    def batched(self, x: Batch, gen: torch.Generator) -> Batch:
        return kernels.gaussian_blur(x, self, gen)

    def problems(self) -> list[tuple[str, str]]:
        odd = [] if self.kernel_size % 2 else [("kernel_size", f"must be odd, got {self.kernel_size}")]
        return odd + _ordered_pair("sigma", self.sigma, 1e-3, 100.0)


@OPS.register("random_erasing")
class RandomErasing(Op):
    """Erases a box after conversion to float in [0, 1]; value 'random' draws N(0, 1) per pixel."""

    needs_float: ClassVar[bool] = True
    op: Literal["random_erasing"]
    p: float = Field(0.5, ge=0.0, le=1.0)
    scale: tuple[float, float] = (0.02, 0.33)
    ratio: tuple[float, float] = (0.3, 3.3)
    value: float | Literal["random"] = 0.0

    def torchvision(self) -> nn.Module:
        return T.RandomErasing(self.p, self.scale, self.ratio, self.value)

    def batched(self, x: Batch, gen: torch.Generator) -> Batch:
        return kernels.random_erasing(x, self, gen)

    def problems(self) -> list[tuple[str, str]]:
        return _ordered_pair("scale", self.scale, 1e-6, 1.0) + _ordered_pair("ratio", self.ratio, 1e-3, 1e3)
