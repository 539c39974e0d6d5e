"""MAC counting against hand formulas, and the timing protocol on a tiny net."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from harness.common.device import Runtime
from harness.measure.latency import time_model
from harness.measure.size import flop_counter_macs, fvcore_macs, size_of
from harness.models import build_model
from harness.spec import load_specs
from tests.conftest import SPEC_FILES


def hand_macs(model: nn.Module, input_size: int = 32) -> int:
    """Conv: H_out * W_out * C_out * (C_in / groups) * k_h * k_w; linear: in * out."""
    total = 0

    def conv_hook(module: nn.Conv2d, _: object, out: torch.Tensor) -> None:
        nonlocal total
        kh, kw = module.kernel_size
        total += out.shape[2] * out.shape[3] * module.out_channels * module.in_channels // module.groups * kh * kw

    def linear_hook(module: nn.Linear, _: object, __: torch.Tensor) -> None:
        nonlocal total
        total += module.in_features * module.out_features

    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            module.register_forward_hook(conv_hook)
        elif isinstance(module, nn.Linear):
            module.register_forward_hook(linear_hook)
    with torch.no_grad():
        model.eval()(torch.randn(1, 3, input_size, input_size))
    return total


def test_tiny_net_by_hand() -> None:
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 10),
    )
    expected = 8 * 8 * 4 * 3 * 9 + 4 * 10  # BN, ReLU and pooling are not MACs
    assert fvcore_macs(net, 8) == expected
    assert flop_counter_macs(net, 8) == expected


def _unique_models() -> list[tuple[str, object]]:
    specs, _ = load_specs(SPEC_FILES)
    seen: dict[object, str] = {}
    for spec in specs:
        for name, variant in spec.variants.items():
            seen.setdefault(variant.recipe.model, f"{spec.name}/{name}")
    return [(label, cfg) for cfg, label in seen.items()]


@pytest.mark.parametrize(("label", "cfg"), _unique_models(), ids=[label for label, _ in _unique_models()])
def test_both_counters_agree_with_the_hand_count(label: str, cfg: object) -> None:
    size = size_of(cfg)
    assert size.macs == size.macs_flop_counter == hand_macs(build_model(cfg))
    assert size.flops == 2 * size.macs


def test_timing_protocol_on_a_tiny_net() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))
    timing = time_model(net, Runtime(torch.device("cpu")), rounds_b1=10, rounds_b256=2, warmup=2)
    assert 0 < timing.latency_ms_b1 <= timing.latency_ms_b1_p90
    assert timing.throughput_img_s_b256 > 0
    assert timing.threads == torch.get_num_threads() and timing.rounds_b1 == 10


def test_other_cpu_use_is_the_busy_share_of_the_window(monkeypatch) -> None:
    """The share comes from two /proc/stat readings given here, never the machine's own (no test may depend on
    how busy the machine is): every jiffy but idle and iowait is busy, counted over the window between the
    readings. Catches iowait counted as busy (0.71 here), the share since boot instead of the window's (0.29),
    and a field read at the wrong place; an unreadable /proc/stat gives None."""
    import io

    from harness.common import device

    before = "cpu  100 5 100 800 40 0 0 0 0 0\ncpu0 50 2 50 400 20 0 0 0 0 0\n"  # the first line is every CPU
    readings = iter([before, "cpu  250 5 150 900 90 0 0 0 0 0\n"])

    def fake_open(path: str, encoding: str = "") -> io.StringIO:
        assert path == "/proc/stat"
        return io.StringIO(next(readings))

    monkeypatch.setattr(device, "open", fake_open, raising=False)
    monkeypatch.setattr(device.time, "sleep", lambda _: None)
    assert device.other_cpu_use(0.3) == pytest.approx(200 / 350)

    def unreadable(path: str, encoding: str = "") -> io.StringIO:
        raise OSError("no /proc here")

    monkeypatch.setattr(device, "open", unreadable, raising=False)
    assert device.other_cpu_use(0.3) is None


def test_a_busy_timing_is_not_cached(tmp_path, monkeypatch) -> None:
    import json

    from harness.measure.latency import Timing, cached_timing, store_timing

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    cfg = load_specs(SPEC_FILES)[0][0].variant(None).recipe.model
    cpu = Runtime(torch.device("cpu"))
    timing = Timing("cpu", 2, 5.0, 6.0, None, 20, 0, other_cpu_use=0.9, busy=True)
    store_timing(cfg, cpu, timing)
    assert not (tmp_path / "timings.json").exists()
    store_timing(cfg, cpu, Timing("cpu", 2, 5.0, 6.0, None, 20, 0, other_cpu_use=0.0, busy=False))
    assert len(json.loads((tmp_path / "timings.json").read_text())) == 1
    assert cached_timing(cfg, cpu).latency_ms_b1 == 5.0  # served from the cache, not re-measured
    # precision and layout are part of the key: a bf16 or channels_last figure is another entry
    store_timing(cfg, cpu.but(channels_last=True), Timing("cpu", 2, 3.0, 4.0, None, 20, 0, channels_last=True))
    assert len(json.loads((tmp_path / "timings.json").read_text())) == 2
    assert cached_timing(cfg, cpu).latency_ms_b1 == 5.0
