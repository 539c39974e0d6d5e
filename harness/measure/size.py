"""Size and compute of a model, counted the same way for every spec.

- params: trainable parameters (`requires_grad`), the figure every report quotes.
- MACs: multiply-accumulates of the convolution, linear and matmul layers for one 3x32x32 image,
  counted by fvcore and cross-checked against `torch.utils.flop_counter` (which counts 2 FLOPs per
  MAC). BatchNorm, activations, pooling and the SE gate's elementwise product are not counted.
  FLOPs are only ever shown as 2 x MACs.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.common.cache import read_table, store_in_table
from harness.common.lazy import lazy
from harness.common.schema import Section

if TYPE_CHECKING:
    from torch import nn

    from harness.spec import Spec

torch = lazy("torch")  # loaded only to count: the leaderboard reads counts from the cache without it

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
        from fvcore.nn import FlopCountAnalysis

        analysis = FlopCountAnalysis(model, _example(model, input_size))
        analysis.set_op_handle(**{op: _zero for op in _NOT_MACS})
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        return int(analysis.total())


def flop_counter_macs(model: nn.Module, input_size: int = 32) -> int:
    """MACs of one image from PyTorch's own FLOP counter (which counts 2 per MAC)."""
    from torch.utils.flop_counter import FlopCounterMode

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


# Counts depend on the builder's code as well as on the config: the cache key holds both.
SIZES = "sizes.json"
COUNTED_BY = sorted((Path(__file__).parent / "models").glob("*.py")) + [Path(__file__)]


@lru_cache(maxsize=64)
def size_of(model_cfg: Section) -> Size:
    """Parameters and MACs of a `[model]` section: from $HARNESS_CACHE/sizes.json when this config was
    counted by this code before, else counted now (and stored)."""
    key = _size_key(model_cfg)
    cached = read_table(SIZES).get(key)
    if cached is not None:
        return Size(**cached)
    size = count_size(model_cfg)
    store_in_table(SIZES, key, asdict(size))
    return size


def count_size(model_cfg: Section) -> Size:
    """Build the network and count it with both counters, which must agree."""
    from harness.models import build_model, count_params

    torch.manual_seed(0)
    model = build_model(model_cfg)
    input_size = getattr(model_cfg, "input_size", 32)
    size = Size(count_params(model), fvcore_macs(model, input_size), flop_counter_macs(model, input_size))
    if size.macs != size.macs_flop_counter:
        raise RuntimeError(
            f"MAC counters disagree: fvcore {size.macs:,} vs torch.utils.flop_counter {size.macs_flop_counter:,}"
        )
    return size


@lru_cache(maxsize=1)
def _code_hash() -> str:
    return hashlib.sha256(b"".join(path.read_bytes() for path in COUNTED_BY)).hexdigest()


def _size_key(model_cfg: Section) -> str:
    text = json.dumps(model_cfg.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(f"{text}|{_code_hash()}".encode()).hexdigest()[:20]


def size_columns(spec: Spec, variant: str) -> dict[str, Any]:
    """params, claimed params and whether they agree, MACs, and the budget check."""
    size = size_of(spec.variants[variant].recipe.model)
    claim = spec.params_claim(variant)
    agreement = claim.agreement(size.params) if claim else None
    return {
        "params": size.params,
        "claimed_params": claim.value if claim else None,
        "claimed_params_text": claim.text if claim else None,
        "params_match": None if claim is None else agreement is not None,
        "params_agreement": agreement,
        "macs": size.macs,
        "param_budget": spec.report.param_budget,
        "within_budget": size.params <= spec.report.param_budget,
        "role": spec.role(variant),
    }


def budget_cell(row: dict[str, Any]) -> str:
    """yes / NO, or 'no (teacher)' / 'no (reference)' for entries not held to the budget."""
    return "yes" if row["within_budget"] else ("NO" if row["role"] == "model" else f"no ({row['role']})")
