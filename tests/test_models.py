"""Every network the reports describe, rebuilt from its spec, with the exact published counts."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from harness.models import build_model, count_params
from harness.models.resnet import CifarResNetConfig, Dropout
from harness.size import size_of
from harness.spec import load_spec
from tests.conftest import SPECS_DIR

# One table of every network's size, checked by one test (as torchvision's references pin their models):
# (spec, variant, params, MACs). Params: every count of seed-facts.md section 1 (independent of this code),
# plus the 1x1-shortcut forms of 003 the seed facts also give. MACs: the layer arithmetic of hand_macs in
# test_measure.py (conv H_out x W_out x C_out x C_in x k x k, linear in x out), not this harness's counters.
SIZES = [
    ("dmsresnet", "as-coded", 4_697_742, 798_690_304),  # Thakur best_model + dropout = 000 student = 001 model
    ("resnet4323-se", "as-coded", 4_993_166, 874_187_776),
    ("se-resnet3343", "as-coded", 4_732_814, 233_740_544),
    ("resnet10", "resnet10-onecycle", 4_980_234, 328_930_304),
    ("resnet10", "resnet12-grid", 195_738, 28_754_560),
    ("resnet10", "resnet14-4-grid", 3_152_410, 217_502_720),
    ("resnet10", "resnet14-5-grid", 4_130_458, 283_563_008),
    ("resnet443-se", "resnet18", 11_173_962, 555_422_720),  # the standard CIFAR ResNet-18: 0.56 GMACs
    ("resnet10", "resnet18-grid", 11_178_762, 555_422_720),
    ("dmsresnet", "teacher", 23_521_422, 1_297_830_400),
    ("resnet443-se", "as-coded", 4_697_742, 798_690_304),
    ("resnet4323-se", "early-443", 4_697_742, 798_690_304),
    ("resnet10", "resnet12-as-written", 175_258, 26_657_408),
    ("resnet10", "resnet14-4-as-written", 2_869_786, 198_628_352),
    ("resnet10", "resnet14-5-as-written", 3_520_154, 243_717_120),
    ("dmsresnet", "baseline", 4_697_162, 798_689_792),  # the stem SE adds 580 parameters and 512 MACs
]


@pytest.mark.parametrize(("spec", "variant", "params", "macs"), SIZES, ids=[f"{s}/{v}" for s, v, _, _ in SIZES])
def test_every_network_has_its_pinned_size(spec: str, variant: str, params: int, macs: int) -> None:
    cfg = load_spec(SPECS_DIR / f"{spec}.toml").variant(variant).recipe.model
    model = build_model(cfg)
    assert (count_params(model), size_of(cfg).macs) == (params, macs)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def _cfg(**overrides) -> CifarResNetConfig:
    base = {"arch": "cifar_resnet", "blocks": (1, 1), "widths": (8, 16), "strides": (1, 2), "stem_width": 8}
    return CifarResNetConfig(**{**base, **overrides})


def _count(model: nn.Module, kind: type[nn.Module]) -> int:
    return sum(isinstance(m, kind) for m in model.modules())


def test_se_sites_and_reduction_set_the_squeeze_width() -> None:
    stem = build_model(_cfg(se_sites=("stem",), se_reduction=4))
    block = build_model(_cfg(se_sites=("block",), se_reduction=4))

    def squeezes(model: nn.Module) -> list[int]:
        return [
            c.out_channels
            for c in model.modules()
            if isinstance(c, nn.Conv2d) and c.kernel_size == (1, 1) and c.in_channels > c.out_channels
        ]

    assert squeezes(stem) == [2]  # 8 // 4, not timm's default rounding up to 8
    assert squeezes(block) == [2, 4]
    # An SE unit of C channels and reduction r adds 2*C*(C//r) + C//r + C parameters.
    plain = count_params(build_model(_cfg()))
    assert count_params(stem) - plain == 2 * 8 * 2 + 2 + 8


def test_dropout_sites() -> None:
    model = build_model(_cfg(blocks=(2, 3), dropout_block=0.1, dropout_fc=0.2))
    assert sorted(m.p for m in model.modules() if isinstance(m, Dropout)) == [0.1] * 5 + [0.2]
    assert _count(build_model(_cfg()), Dropout) == 0


def test_dropout_keeps_1_minus_p_and_rescales() -> None:
    drop = Dropout(0.3).train()
    x = torch.ones(32, 16, 16, 16).contiguous(memory_format=torch.channels_last)
    torch.manual_seed(0)
    y = drop(x)
    assert (y == 0).float().mean().item() == pytest.approx(0.3, abs=0.005)
    assert y[y > 0].unique().tolist() == pytest.approx([65536 / (65536 - round(0.3 * 65536))])
    assert y.mean().item() == pytest.approx(1.0, abs=0.01)  # inverted dropout keeps the expectation
    assert y.is_contiguous(memory_format=torch.channels_last)
    torch.manual_seed(0)
    assert torch.equal(drop(x), y)  # reproducible from torch's seed
    assert torch.equal(drop.eval()(x), x)


def test_bias_flags_and_shortcut_kernel() -> None:
    model = build_model(_cfg(stem_bias=True, conv_bias=True, shortcut_bias=True, shortcut_kernel=3))
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.bias is not None for c in convs)
    shortcut = model.stages[1][0].shortcut[0]
    assert shortcut.kernel_size == (3, 3) and shortcut.stride == (2, 2) and shortcut.padding == (1, 1)
    assert all(c.bias is None for c in build_model(_cfg()).modules() if isinstance(c, nn.Conv2d))


def test_bottleneck_expands_by_four_with_stride_on_the_3x3() -> None:
    model = build_model(_cfg(block="bottleneck", blocks=(1, 1), widths=(4, 8)))
    block = model.stages[1][0]
    assert block.conv2.stride == (2, 2) and block.conv1.stride == (1, 1)
    assert block.conv3.out_channels == 32 and model.fc.in_features == 32


def test_pool_kernel_must_cover_the_final_map() -> None:
    assert _cfg(pool_kernel=16).problems() == []
    assert _cfg(pool_kernel=8).problems() == [("pool_kernel", "8 does not cover the final 16x16 map (use 16)")]


def test_kaiming_fan_out_init_of_002() -> None:
    torch.manual_seed(0)
    model = build_model(_cfg(widths=(64, 64), stem_width=64, init="kaiming_fan_out", se_sites=("block",)))
    conv = model.stages[0][0].conv1  # 64 -> 64, 3x3: fan_out = 64 * 9
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / (64 * 9)), rel=0.05)
    assert all(
        (m.bias == 0).all() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None
    )


def test_kaiming_fan_in_xavier_fc_init_of_003() -> None:
    torch.manual_seed(0)
    model = build_model(_cfg(widths=(64, 256), stem_width=64, conv_bias=True, init="kaiming_fan_in_xavier_fc"))
    conv = model.stages[1][0].conv2  # 256 -> 256, 3x3: fan_in = 256 * 9
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / (256 * 9)), rel=0.05)
    assert (conv.bias == 0).all()
    fc = model.fc  # xavier normal, gain sqrt 2: std = sqrt(2) * sqrt(2 / (fan_in + fan_out))
    assert fc.weight.std().item() == pytest.approx(math.sqrt(2) * math.sqrt(2 / (256 + 10)), rel=0.1)


def test_kaiming_fan_in_init_as_002_states_it() -> None:
    torch.manual_seed(0)
    model = build_model(_cfg(widths=(64, 256), stem_width=64, init="kaiming_fan_in"))
    conv = model.stages[1][0].conv2
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / (256 * 9)), rel=0.05)
    assert model.fc.weight.std().item() == pytest.approx(math.sqrt(2 / 256), rel=0.1)
    assert (model.fc.bias == 0).all()


def test_default_init_is_pytorchs() -> None:
    # PyTorch's own layer init, kaiming_uniform_(a=sqrt(5)): every conv and linear weight is uniform on
    # [-1/sqrt(fan_in), 1/sqrt(fan_in)], so its spread is bound/sqrt(3). Any other scheme (a normal
    # Kaiming, Xavier) breaks the bound or the spread.
    model = build_model(_cfg(widths=(64, 128), stem_width=64))
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)) and module.weight.numel() >= 4096:
            bound = 1 / math.sqrt(module.weight[0].numel())
            assert module.weight.abs().max() <= bound
            assert module.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05)
