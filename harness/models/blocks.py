"""The residual blocks and shortcuts of CIFAR ResNets, post- and pre-activation, and the dropout they use.

Post-activation (He et al. 2016a, all five reports): conv-BN-ReLU-conv-BN, [SE], add the shortcut, ReLU.
Pre-activation (He et al. 2016b, "Identity Mappings"; wide ResNets): BN-ReLU-conv-BN-ReLU-[dropout]-conv,
[SE], add; a projection shortcut takes the pre-activated input, as kuangliu's PreActBlock and the WRN
code do. `FOLDABLE` names the (conv, BN) pairs where the BN follows the conv, which a frozen teacher
folds (models.fold_batchnorm).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class Dropout(nn.Module):
    """Inverted dropout, the same in distribution as nn.Dropout, with torch's p and scale.

    Written by hand for one reason: on the CPU, torch's bernoulli_ is the slowest op of a training
    step; this draws the keep-mask with NumPy's PCG64 (about 5x faster, as measured with the earlier
    16-bit draws), seeded from torch's RNG so runs stay reproducible. Elsewhere it is F.dropout.
    The draws are 32-bit: an element is dropped with probability `threshold / 2**32`, within 2**-33 of p,
    and the kept ones are scaled by 1 / (1 - p), as F.dropout scales them. Until issue 26 the draws were 16-bit: p = 0.1 dropped
    6554/65536 = 0.1000061 of the elements and scaled by 1.1111187, not 1.1111112. What a run with
    dropout computes changed, so its spec hash did too (CifarResNetConfig.code_versions).
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p
        self.threshold = min(round(p * 2**32), 2**32 - 1)
        self.scale = float(np.float32(1.0) / np.float32(1.0 - p))  # F.dropout's float32 1 / (1 - p), exactly

    @property
    def drop_probability(self) -> float:
        """The probability with which the CPU path drops an element: p to 2**-33."""
        return self.threshold / 2**32

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        if not x.is_cpu:
            return F.dropout(x, self.p, training=True)
        seed = int(torch.randint(2**62, (1,)).item())
        bits = np.random.default_rng(seed).integers(0, 2**32, x.numel(), dtype=np.uint32)
        keep = torch.from_numpy(bits >= self.threshold).as_strided(x.size(), x.stride())  # x's own layout
        return x * keep * self.scale

    def extra_repr(self) -> str:
        return f"p={self.p}"


def dropout(p: float) -> nn.Module:
    return Dropout(p) if p > 0 else nn.Identity()


def squeeze_excite(channels: int, cfg: Any) -> nn.Module:
    from timm.layers import SEModule  # here: timm loads torchvision (seconds), which a network without SE never needs

    # timm's default rounds the squeeze width to a multiple of 8; the reports use channels // r.
    return SEModule(channels, rd_channels=channels // cfg.se_reduction, bias=True)


class PadShortcut(nn.Module):
    """Option A of He et al. 2016: the identity, subsampled with the stride and zero-padded to the new
    width (half the new channels on each side, as akamaster's CIFAR ResNets do); no parameters."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.stride, self.extra = stride, out_ch - in_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2)) if self.extra else x


def shortcut(in_ch: int, out_ch: int, stride: int, cfg: Any, normalized: bool) -> nn.Module:
    """Identity when the shape stays; else option A (`pad`), or a projection: a k x k conv, followed by a
    BN in post-activation blocks (`normalized`), alone in pre-activation ones."""
    if stride == 1 and in_ch == out_ch:
        return nn.Identity()
    if cfg.shortcut == "pad":
        return PadShortcut(in_ch, out_ch, stride)
    k = cfg.shortcut_kernel
    conv = nn.Conv2d(in_ch, out_ch, k, stride, k // 2, bias=cfg.shortcut_bias)
    return nn.Sequential(conv, nn.BatchNorm2d(out_ch)) if normalized else conv


def _conv(in_ch: int, out_ch: int, kernel: int, stride: int, cfg: Any) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, bias=cfg.conv_bias)


class BasicBlock(nn.Module):
    """Post-activation: conv3x3-BN-ReLU-conv3x3-BN, [SE], add, ReLU, [dropout]."""

    expansion = 1
    FOLDABLE = (("conv1", "bn1"), ("conv2", "bn2"))

    def __init__(self, in_ch: int, width: int, stride: int, cfg: Any) -> None:
        super().__init__()
        out_ch = width * self.expansion
        self.conv1 = _conv(in_ch, width, 3, stride, cfg)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv(width, out_ch, 3, 1, cfg)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.se = squeeze_excite(out_ch, cfg) if "block" in cfg.se_sites else nn.Identity()
        self.shortcut = shortcut(in_ch, out_ch, stride, cfg, normalized=True)
        self.drop = dropout(cfg.dropout_block)
        self.between = dropout(cfg.dropout_between)

    # ReLUs run in place: the same values, one activation-sized allocation fewer (a quarter faster for
    # the frozen teacher's forward pass on the CPU); autograd checks that nothing it needs is overwritten.
    def residual(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn2(self.conv2(self.between(F.relu(self.bn1(self.conv1(x)), inplace=True))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(F.relu(self.se(self.residual(x)) + self.shortcut(x), inplace=True))


class Bottleneck(BasicBlock):
    """Post-activation, x4 expansion: conv1x1-BN-ReLU-conv3x3 (the stride, kuangliu's layout)-BN-ReLU-conv1x1-BN."""

    expansion = 4
    FOLDABLE = (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3"))

    def __init__(self, in_ch: int, width: int, stride: int, cfg: Any) -> None:
        super().__init__(in_ch, width, stride, cfg)
        out_ch = width * self.expansion
        self.conv1 = _conv(in_ch, width, 1, 1, cfg)
        self.conv2 = _conv(width, width, 3, stride, cfg)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = _conv(width, out_ch, 1, 1, cfg)
        self.bn3 = nn.BatchNorm2d(out_ch)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.between(F.relu(self.bn2(self.conv2(out)), inplace=True))
        return self.bn3(self.conv3(out))


class PreActBasicBlock(nn.Module):
    """Pre-activation: BN-ReLU-conv3x3-BN-ReLU-[dropout]-conv3x3, [SE], add, [dropout]."""

    expansion = 1
    FOLDABLE = (("conv1", "bn2"),)

    def __init__(self, in_ch: int, width: int, stride: int, cfg: Any) -> None:
        super().__init__()
        out_ch = width * self.expansion
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.conv1 = _conv(in_ch, width, 3, stride, cfg)
        self.bn2 = nn.BatchNorm2d(width)
        self.between = dropout(cfg.dropout_between)
        self.conv2 = _conv(width, out_ch, 3, 1, cfg)
        self.se = squeeze_excite(out_ch, cfg) if "block" in cfg.se_sites else nn.Identity()
        self.shortcut = shortcut(in_ch, out_ch, stride, cfg, normalized=False)
        self.drop = dropout(cfg.dropout_block)

    def residual(self, activated: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.between(F.relu(self.bn2(self.conv1(activated)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activated = F.relu(self.bn1(x))
        # A projection (a conv) sees the pre-activated input; the identity and option A see x itself.
        skip = self.shortcut(activated) if isinstance(self.shortcut, nn.Conv2d) else self.shortcut(x)
        return self.drop(self.se(self.residual(activated)) + skip)


class PreActBottleneck(PreActBasicBlock):
    """Pre-activation, x4 expansion: BN-ReLU-conv1x1-BN-ReLU-conv3x3-BN-ReLU-[dropout]-conv1x1."""

    expansion = 4
    FOLDABLE = (("conv1", "bn2"), ("conv2", "bn3"))

    def __init__(self, in_ch: int, width: int, stride: int, cfg: Any) -> None:
        super().__init__(in_ch, width, stride, cfg)
        out_ch = width * self.expansion
        self.conv1 = _conv(in_ch, width, 1, 1, cfg)
        self.conv2 = _conv(width, width, 3, stride, cfg)
        self.bn3 = nn.BatchNorm2d(width)
        self.conv3 = _conv(width, out_ch, 1, 1, cfg)

    def residual(self, activated: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn2(self.conv1(activated)))
        out = self.between(F.relu(self.bn3(self.conv2(out))))
        return self.conv3(out)


BLOCKS: dict[str, type[nn.Module]] = {
    "basic": BasicBlock,
    "bottleneck": Bottleneck,
    "preact_basic": PreActBasicBlock,
    "preact_bottleneck": PreActBottleneck,
}
