"""One CIFAR ResNet builder: the five reports' networks, Thakur et al.'s base, report 000's teacher, ResNet-18,
and the field's other standard forms (pre-activation and wide ResNets, option A shortcuts).

The five reports' blocks are all post-activation (conv-BN-ReLU-conv-BN, [SE], add, ReLU); blocks.py holds
every block and shortcut.
"""

from __future__ import annotations

import torch
from torch import nn

from harness.models.blocks import BLOCKS, dropout, squeeze_excite
from harness.models.config import CifarResNetConfig
from harness.models.init import INITS


class CifarResNet(nn.Module):
    """Stem conv [-BN-ReLU] [SE], residual stages, [BN-ReLU], pooling, [dropout], linear classifier."""

    def __init__(self, cfg: CifarResNetConfig) -> None:
        super().__init__()
        block = BLOCKS[cfg.block]
        stem_norm = cfg.stem_norm if cfg.stem_norm is not None else not cfg.preactivated
        self.stem = nn.Sequential(
            nn.Conv2d(3, cfg.stem_width, 3, 1, 1, bias=cfg.stem_bias),
            nn.BatchNorm2d(cfg.stem_width) if stem_norm else nn.Identity(),
            nn.ReLU(inplace=True) if stem_norm else nn.Identity(),
            squeeze_excite(cfg.stem_width, cfg) if "stem" in cfg.se_sites else nn.Identity(),
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
        final_norm = cfg.final_norm if cfg.final_norm is not None else cfg.preactivated
        # He et al. 2016b end a pre-activation network with BN-ReLU before pooling; kuangliu's does not
        self.head = nn.Sequential(nn.BatchNorm2d(in_ch), nn.ReLU(inplace=True)) if final_norm else nn.Identity()
        self.pool: nn.Module = nn.AvgPool2d(cfg.pool_kernel) if cfg.pool_kernel else nn.AdaptiveAvgPool2d(1)
        self.drop = dropout(cfg.dropout_fc)
        self.fc = nn.Linear(in_ch, cfg.num_classes)
        INITS[cfg.init](self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.pool(self.head(self.stages(self.stem(x))))
        return self.fc(self.drop(torch.flatten(out, 1)))
