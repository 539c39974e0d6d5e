"""The `[model]` section of `arch = "cifar_resnet"`: what a spec may say about a network, checked without
building it (and without PyTorch: reading specs stays fast); resnet.py builds it."""

from __future__ import annotations

import itertools
from typing import Literal

from pydantic import Field

from harness.common.schema import Section
from harness.models.init import INITS

EXPANSION = {"basic": 1, "bottleneck": 4, "preact_basic": 1, "preact_bottleneck": 4}  # = blocks.BLOCKS[b].expansion
Fraction = float  # documented alias: a probability in [0, 1)
MAX_WIDTH = 8192  # channels of any one layer: 16x ResNet-18's widest; beyond it a spec is surely a typo
MAX_BLOCKS = 1000  # residual blocks in all (ResNet-1001 has 333 bottlenecks)


class CifarResNetConfig(Section):
    """The `[model]` table of a spec with `arch = "cifar_resnet"`."""

    arch: Literal["cifar_resnet"]
    block: Literal["basic", "bottleneck", "preact_basic", "preact_bottleneck"] = "basic"
    blocks: tuple[int, ...] = Field(min_length=1)
    widths: tuple[int, ...] = Field(min_length=1)
    strides: tuple[int, ...] = Field(min_length=1)
    stem_width: int = Field(64, gt=0, le=MAX_WIDTH)
    stem_bias: bool = False
    conv_bias: bool = False
    shortcut: Literal["conv", "pad"] = "conv"  # a projection, or option A (subsample and zero-pad)
    shortcut_kernel: int = Field(1, ge=1, le=7)
    shortcut_bias: bool = False
    stem_norm: bool | None = None  # BN-ReLU after the stem conv; default: for post-activation blocks only
    final_norm: bool | None = None  # BN-ReLU before pooling; default: for pre-activation blocks only
    se_sites: tuple[Literal["stem", "block"], ...] = ()
    se_reduction: int = Field(16, gt=0, le=MAX_WIDTH)
    dropout_block: float = Field(0.0, ge=0.0, lt=1.0)
    dropout_fc: float = Field(0.0, ge=0.0, lt=1.0)
    dropout_between: float = Field(0.0, ge=0.0, lt=1.0)  # between a block's convolutions, as wide ResNets do
    pool_kernel: int | None = Field(None, gt=0, le=1024)
    init: str = "pytorch_default"
    num_classes: int = Field(10, gt=1, le=100_000)
    input_size: int = Field(32, gt=0, le=1024)

    @property
    def preactivated(self) -> bool:
        return self.block.startswith("preact_")

    def code_versions(self) -> tuple[str, ...]:
        """Changes to what the code computes for these same values, named where they apply so that the spec
        hash covers them (spec.sections.recipe_hash) while every other model keeps its hash.

        cpu-dropout:2 (issue 26): the CPU dropout drops with torch's p and scales by torch's 1 / (1 - p), where
        its 16-bit draws had rounded p to a multiple of 1/65536 (blocks.Dropout).
        """
        uses_dropout = self.dropout_block > 0 or self.dropout_fc > 0 or self.dropout_between > 0
        return ("cpu-dropout:2",) if uses_dropout else ()

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
        if self.final_norm and not self.preactivated:
            found.append(("final_norm", f"a post-activation network ({self.block}) already ends in BN-ReLU"))
        if self.shortcut == "pad" and not self._widths_grow():
            found.append(("shortcut", '"pad" zero-pads to a wider stage; every stage must be at least as wide'))
        if self.shortcut_kernel % 2 == 0:
            found.append(("shortcut_kernel", f"must be odd so that padding keeps the size, got {self.shortcut_kernel}"))
        if self.init not in INITS:
            from harness.common.registry import did_you_mean

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

    def _widths_grow(self) -> bool:
        expansion = EXPANSION[self.block]
        widths = [self.stem_width] + [w * expansion for w in self.widths]
        return all(a <= b for a, b in itertools.pairwise(widths))
