"""One CIFAR ResNet builder for all five reports, Thakur et al.'s base, 000's teacher and ResNet-18.

Every block is post-activation (conv-BN-ReLU-conv-BN, [SE], add, ReLU), as in all the reports' code.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from timm.layers import SEModule
from torch import nn

from harness.models.init import INITS
from harness.schema import Section

Fraction = float  # documented alias: a probability in [0, 1)
MAX_WIDTH = 8192  # channels of any one layer: 16x ResNet-18's widest; beyond it a spec is surely a typo
MAX_BLOCKS = 1000  # residual blocks in all (ResNet-1001 has 333 bottlenecks)


class CifarResNetConfig(Section):
    """The `[model]` table of a spec with `arch = "cifar_resnet"`."""

    arch: Literal["cifar_resnet"]
    block: Literal["basic", "bottleneck"] = "basic"
    blocks: tuple[int, ...] = Field(min_length=1)
    widths: tuple[int, ...] = Field(min_length=1)
    strides: tuple[int, ...] = Field(min_length=1)
    stem_width: int = Field(64, gt=0, le=MAX_WIDTH)
    stem_bias: bool = False
    conv_bias: bool = False
    shortcut_kernel: int = Field(1, ge=1, le=7)
    shortcut_bias: bool = False
    se_sites: tuple[Literal["stem", "block"], ...] = ()
    se_reduction: int = Field(16, gt=0, le=MAX_WIDTH)
    dropout_block: float = Field(0.0, ge=0.0, lt=1.0)
    dropout_fc: float = Field(0.0, ge=0.0, lt=1.0)
    pool_kernel: int | None = Field(None, gt=0, le=1024)
    init: str = "pytorch_default"
    num_classes: int = Field(10, gt=1, le=100_000)
    input_size: int = Field(32, gt=0, le=1024)

    def final_map_size(self) -> int:
        size = self.input_size
        for stride in self.strides:
            size = (size - 1) // stride + 1
        return size

    def problems(self) -> list[tuple[str, str]]:
        """Cross-field checks, as (key, message) pairs; empty when the model can be built."""
        found: list[tuple[str, str]] = []
        for key in ("widths", "strides"):
            if len(getattr(self, key)) != len(self.blocks):
                found.append((key, f"has {len(getattr(self, key))} entries but blocks has {len(self.blocks)}"))
        if any(n <= 0 for n in self.blocks):
            found.append(("blocks", "every stage needs at least one block"))
        if sum(self.blocks) > MAX_BLOCKS:
            found.append(("blocks", f"{sum(self.blocks)} blocks in all; at most {MAX_BLOCKS} are supported"))
        if any(w <= 0 for w in self.widths):
            found.append(("widths", "every width must be positive"))
        if any(w > MAX_WIDTH for w in self.widths):
            found.append(("widths", f"every width must be at most {MAX_WIDTH}, got {list(self.widths)}"))
        if any(s not in (1, 2) for s in self.strides):
            found.append(("strides", f"each stride must be 1 or 2, got {list(self.strides)}"))
        if self.shortcut_kernel % 2 == 0:
            found.append(("shortcut_kernel", f"must be odd so that padding keeps the size, got {self.shortcut_kernel}"))
        if self.init not in INITS:
            from harness.registry import did_you_mean

            found.append(("init", f"unknown init scheme {self.init!r}{did_you_mean(self.init, INITS.names())}"))
        se_channels = ([self.stem_width] if "stem" in self.se_sites else []) + (
            list(self.widths) if "block" in self.se_sites else []
        )
        if any(c // self.se_reduction < 1 for c in se_channels):
            found.append(("se_reduction", f"{self.se_reduction} leaves an SE layer with no channels"))
        if not found and self.pool_kernel is not None and self.pool_kernel != self.final_map_size():
            size = self.final_map_size()
            found.append(("pool_kernel", f"{self.pool_kernel} does not cover the final {size}x{size} map (use {size})"))
        return found


class Dropout(nn.Module):
    """Inverted dropout, the same in distribution as nn.Dropout.

    Written by hand for one reason: on the CPU, torch's bernoulli_ is the slowest op of a training
    step; this draws the keep-mask with NumPy's PCG64 (about 5x faster), seeded from torch's RNG so
    runs stay reproducible, with p rounded to a multiple of 1/65536. Elsewhere it is F.dropout.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p
        self.threshold = round(p * 65536)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        if not x.is_cpu:
            return F.dropout(x, self.p, training=True)
        seed = int(torch.randint(2**62, (1,)).item())
        bits = np.random.default_rng(seed).integers(0, 65536, x.numel(), dtype=np.uint16)
        keep = torch.from_numpy(bits >= self.threshold).as_strided(x.size(), x.stride())  # x's own layout
        return x * keep * (65536 / (65536 - self.threshold))

    def extra_repr(self) -> str:
        return f"p={self.p}"


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_ch: int, width: int, stride: int, cfg: CifarResNetConfig) -> None:
        super().__init__()
        out_ch = width * self.expansion
        self.conv1 = nn.Conv2d(in_ch, width, 3, stride, 1, bias=cfg.conv_bias)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, out_ch, 3, 1, 1, bias=cfg.conv_bias)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.se = _se(out_ch, cfg) if "block" in cfg.se_sites else nn.Identity()
        self.shortcut = _shortcut(in_ch, out_ch, stride, cfg)
        self.drop = Dropout(cfg.dropout_block) if cfg.dropout_block > 0 else nn.Identity()

    # ReLUs run in place: the same values, one activation-sized allocation fewer (a quarter faster for
    # the frozen teacher's forward pass on the CPU); autograd checks that nothing it needs is overwritten.
    def residual(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)), inplace=True)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(F.relu(self.se(self.residual(x)) + self.shortcut(x), inplace=True))


class Bottleneck(BasicBlock):
    expansion = 4

    def __init__(self, in_ch: int, width: int, stride: int, cfg: CifarResNetConfig) -> None:
        super().__init__(in_ch, width, stride, cfg)
        out_ch = width * self.expansion
        # The stride sits on the 3x3 conv, as in 000's teacher (kuangliu layout).
        self.conv1 = nn.Conv2d(in_ch, width, 1, 1, 0, bias=cfg.conv_bias)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=cfg.conv_bias)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_ch, 1, 1, 0, bias=cfg.conv_bias)
        self.bn3 = nn.BatchNorm2d(out_ch)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = F.relu(self.bn2(self.conv2(out)), inplace=True)
        return self.bn3(self.conv3(out))


def _se(channels: int, cfg: CifarResNetConfig) -> nn.Module:
    # timm's default rounds the squeeze width to a multiple of 8; the reports use channels // r.
    return SEModule(channels, rd_channels=channels // cfg.se_reduction, bias=True)


def _shortcut(in_ch: int, out_ch: int, stride: int, cfg: CifarResNetConfig) -> nn.Module:
    if stride == 1 and in_ch == out_ch:
        return nn.Identity()
    k = cfg.shortcut_kernel
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, k, stride, k // 2, bias=cfg.shortcut_bias), nn.BatchNorm2d(out_ch))


class CifarResNet(nn.Module):
    """Stem conv-BN-ReLU [SE], residual stages, pooling, [dropout], linear classifier."""

    def __init__(self, cfg: CifarResNetConfig) -> None:
        super().__init__()
        block = BasicBlock if cfg.block == "basic" else Bottleneck
        self.stem = nn.Sequential(
            nn.Conv2d(3, cfg.stem_width, 3, 1, 1, bias=cfg.stem_bias),
            nn.BatchNorm2d(cfg.stem_width),
            nn.ReLU(inplace=True),
            _se(cfg.stem_width, cfg) if "stem" in cfg.se_sites else nn.Identity(),
        )
        stages: list[nn.Module] = []
        in_ch = cfg.stem_width
        for n_blocks, width, stride in zip(cfg.blocks, cfg.widths, cfg.strides, strict=True):
            layers = []
            for i in range(n_blocks):
                layers.append(block(in_ch, width, stride if i == 0 else 1, cfg))
                in_ch = width * block.expansion
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.pool: nn.Module = nn.AvgPool2d(cfg.pool_kernel) if cfg.pool_kernel else nn.AdaptiveAvgPool2d(1)
        self.drop = Dropout(cfg.dropout_fc) if cfg.dropout_fc > 0 else nn.Identity()
        self.fc = nn.Linear(in_ch, cfg.num_classes)
        INITS[cfg.init](self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.pool(self.stages(self.stem(x)))
        return self.fc(self.drop(torch.flatten(out, 1)))
