"""pytest-benchmark: CPU batch-1 forward latency of every distinct network in the specs.

CI runs a few rounds (HARNESS_BENCH_ROUNDS, default 3) to prove the path works; `make bench` runs 50.
Compare runs with `pytest tests/benchmarks --benchmark-autosave` and `pytest-benchmark compare`.
"""

from __future__ import annotations

import os

import pytest
import torch

from harness.measure.size import size_of
from harness.models import build_model
from harness.spec import load_specs
from tests.conftest import SPEC_FILES

ROUNDS = int(os.environ.get("HARNESS_BENCH_ROUNDS", "3"))


def _models() -> dict[str, object]:
    specs, _ = load_specs(SPEC_FILES)
    seen: dict[object, str] = {}
    for spec in specs:
        for name, variant in spec.variants.items():
            seen.setdefault(variant.recipe.model, f"{spec.name}/{name}")
    return {label: cfg for cfg, label in seen.items()}


MODELS = _models()


@pytest.mark.parametrize("label", list(MODELS))
def test_cpu_latency_batch1(benchmark, label: str) -> None:
    cfg = MODELS[label]
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    x = torch.randn(1, 3, 32, 32)
    size = size_of(cfg)
    benchmark.extra_info.update(params=size.params, macs=size.macs, threads=torch.get_num_threads())
    with torch.inference_mode():
        out = benchmark.pedantic(model, args=(x,), rounds=ROUNDS, warmup_rounds=1, iterations=1)
    assert out.shape == (1, 10)
