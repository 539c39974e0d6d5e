"""Size and compute of a model, counted the same way for every spec.

- params: trainable parameters (`requires_grad`), the figure every report quotes.
- MACs: multiply-accumulates of the convolution, linear and matmul layers for one 3x32x32 image,
  counted by fvcore and cross-checked against `torch.utils.flop_counter` (which counts 2 FLOPs per
  MAC). BatchNorm, activations, pooling and the SE gate's elementwise product are not counted.
  FLOPs are only ever shown as 2 x MACs.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from harness.models import build_model, count_params
from harness.schema import Section

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)  # fvcore imports deprecated torch.jit helpers
    from fvcore.nn import FlopCountAnalysis

# fvcore's default handles that count something other than multiply-accumulates.
_NOT_MACS = (
    "aten::batch_norm",
    "aten::group_norm",
    "aten::layer_norm",
    "aten::instance_norm",
    "aten::upsample_nearest2d",
    "aten::upsample_bilinear2d",
    "aten::adaptive_avg_pool2d",
    "aten::grid_sampler",
)


def _zero(*_: object) -> int:
    # fvcore: set_op_handle(op, None) leaves BN counted, so the handle must return 0 instead.
    return 0


def _example(model: nn.Module, input_size: int, batch: int = 1) -> torch.Tensor:
    device = next(model.parameters()).device
    return torch.randn(batch, 3, input_size, input_size, device=device)


def fvcore_macs(model: nn.Module, input_size: int = 32) -> int:
    """MACs of one image, counted by fvcore (one fused multiply-add = one)."""
    model = model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # jit tracer and deprecation warnings, not problems of the count
        analysis = FlopCountAnalysis(model, _example(model, input_size))
        analysis.set_op_handle(**{op: _zero for op in _NOT_MACS})
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        return int(analysis.total())


def flop_counter_macs(model: nn.Module, input_size: int = 32) -> int:
    """MACs of one image from PyTorch's own FLOP counter (which counts 2 per MAC)."""
    model = model.eval()
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(_example(model, input_size))
    return counter.get_total_flops() // 2


@dataclass(frozen=True)
class Size:
    params: int
    macs: int
    macs_flop_counter: int

    @property
    def flops(self) -> int:
        return 2 * self.macs


@lru_cache(maxsize=64)
def size_of(model_cfg: Section) -> Size:
    """Parameters and MACs of a `[model]` section (cached: many variants share one network)."""
    torch.manual_seed(0)
    model = build_model(model_cfg)
    input_size = getattr(model_cfg, "input_size", 32)
    size = Size(count_params(model), fvcore_macs(model, input_size), flop_counter_macs(model, input_size))
    if size.macs != size.macs_flop_counter:
        raise RuntimeError(
            f"MAC counters disagree: fvcore {size.macs:,} vs torch.utils.flop_counter {size.macs_flop_counter:,}"
        )
    return size
