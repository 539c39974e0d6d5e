"""Every network the reports describe, rebuilt from its spec, with the exact published counts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from harness.measure.size import size_of
from harness.models import build_model, count_params
from harness.models.blocks import Dropout
from harness.models.config import CifarResNetConfig
from harness.spec import load_spec
from harness.spec.sections import content_hash, recipe_hash
from tests.conftest import SPECS_DIR

# One table of every network's size, checked by one test (as torchvision's references pin their models):
# (spec, variant, params, MACs). Params: every count of seed-facts.md section 1 (independent of this code),
# plus the 1x1-shortcut forms of report 003 the seed facts also give. MACs: the layer arithmetic of hand_macs in
# test_measure.py (conv H_out x W_out x C_out x C_in x k x k, linear in x out), not this harness's counters.
SIZES = [
    (
        "dmsresnet",
        "as-coded",
        4_697_742,
        798_690_304,
    ),  # Thakur best_model + dropout = report 000's student = report 001's model
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
    assert y[y > 0].unique().tolist() == [float(torch.tensor(1.0) / 0.7)]  # F.dropout's float32 scale
    assert y.mean().item() == pytest.approx(1.0, abs=0.01)  # inverted dropout keeps the expectation
    assert y.is_contiguous(memory_format=torch.channels_last)
    torch.manual_seed(0)
    assert torch.equal(drop(x), y)  # reproducible from torch's seed
    assert torch.equal(drop.eval()(x), x)


@pytest.mark.parametrize("p", [0.05, 0.1, 0.3, 0.5, 0.9, 0.999])
def test_cpu_dropout_has_torchs_p_and_scale(p: float) -> None:
    """The CPU dropout's p and scale are F.dropout's to float precision. Catches the 16-bit draws it had
    before issue 26: p rounded to a multiple of 1/65536 (0.1 dropped 0.1000061 of the elements) and the
    kept ones scaled by 65536 / (65536 - threshold) (1.1111187 for p = 0.1, not 1.1111112)."""
    drop = Dropout(p).train()
    assert abs(drop.drop_probability - p) <= np.spacing(np.float32(p))
    x = torch.ones(2**16)
    torch.manual_seed(0)
    ours = drop(x)
    theirs = torch.nn.functional.dropout(x, p, training=True)
    assert ours[ours > 0].unique().tolist() == theirs[theirs > 0].unique().tolist()  # bit for bit


def test_cpu_dropout_draws_a_tiny_p() -> None:
    """A p far below 1/65536 still drops elements: 16-bit draws rounded 2e-6 to 0 and dropped none."""
    torch.manual_seed(0)
    y = Dropout(2e-6).train()(torch.ones(2**22))
    assert 0 < int((y == 0).sum()) < 40  # 8.4 expected; P(0) = 2e-4 and P(>= 40) < 1e-13 for any seed


def test_the_dropout_code_version_enters_the_hash_of_models_with_dropout_only() -> None:
    """Runs with dropout compute differently since issue 26, so their spec hash changed (no record of the
    old dropout is taken for the new); a model without dropout keeps the hash its records carry."""
    recipe = load_spec(SPECS_DIR / "dmsresnet.toml").variants["as-coded"].recipe
    assert recipe.model.dropout_block > 0
    assert recipe_hash(recipe) != content_hash([recipe.model_dump(mode="json")])
    model = recipe.model.model_copy(update={"dropout_block": 0.0, "dropout_fc": 0.0})
    plain = recipe.model_copy(update={"model": model})
    assert recipe_hash(plain) == content_hash([plain.model_dump(mode="json")])


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


# Parameter counts from the layer arithmetic, by hand (as the reports' Eq. 1 does): conv k x k x C_in x C_out
# (no bias), BN 2 x C, linear C x 10 + 10. Each new block and shortcut is counted here and built.
def _build(**overrides) -> nn.Module:
    return build_model(CifarResNetConfig(**{"arch": "cifar_resnet", **overrides}))


def test_option_a_shortcuts_add_no_parameters_resnet20() -> None:
    # ResNet-20 of He et al. 2016 (0.27M): stem 3*16*9 + 32 = 464; stage 1: 3 x (2 x 2,304 + 2 x 32) = 14,016;
    # stage 2: (4,608 + 9,216 + 128) + 2 x (2 x 9,216 + 128) = 51,072; stage 3: (18,432 + 36,864 + 256)
    # + 2 x (2 x 36,864 + 256) = 203,520; fc 64 * 10 + 10 = 650; option A shortcuts: 0. Sum 269,722.
    model = _build(
        blocks=(3, 3, 3), widths=(16, 32, 64), strides=(1, 2, 2), stem_width=16, shortcut="pad", pool_kernel=8
    )
    assert count_params(model) == 269_722


def test_option_a_subsamples_and_zero_pads() -> None:
    from harness.models.blocks import PadShortcut

    x = torch.arange(2 * 4 * 4 * 4, dtype=torch.float32).view(2, 4, 4, 4)
    out = PadShortcut(4, 8, 2)(x)
    assert out.shape == (2, 8, 2, 2)
    assert torch.equal(out[:, 2:6], x[:, :, ::2, ::2]) and not out[:, :2].any() and not out[:, 6:].any()


def test_preact_basic_blocks_wrn_16_4() -> None:
    # WRN-16-4 (Zagoruyko & Komodakis; the paper states no count for it): stem 3*16*9 = 432; group 1:
    # (2*16 + 16*64*9 + 2*64 + 64*64*9 + 1x1 projection 16*64) = 47,264 and (2*64 + 36,864 + 128 + 36,864)
    # = 73,984; group 2: (128 + 64*128*9 + 256 + 128*128*9 + 64*128) = 229,760 and 295,424; group 3:
    # (256 + 128*256*9 + 512 + 256*256*9 + 128*256) = 918,272 and 1,180,672; final BN 512; fc 2,570.
    # Sum 2,748,890 (the official code's log gives 8,949,210 for WRN-40-4, which this builder also gives).
    wrn = {"block": "preact_basic", "strides": (1, 2, 2), "stem_width": 16, "pool_kernel": 8}
    assert count_params(_build(blocks=(2, 2, 2), widths=(64, 128, 256), **wrn)) == 2_748_890
    assert count_params(_build(blocks=(6, 6, 6), widths=(64, 128, 256), **wrn)) == 8_949_210


def test_preact_basic_blocks_kuangliu_resnet18() -> None:
    # kuangliu's PreActResNet18: stem 1,728 (no BN); layer1 2 x 73,984; layer2 229,760 + 295,424;
    # layer3 918,272 + 1,180,672; layer4 3,671,552 + 4,720,640 (1x1 projections, no BN); no final BN;
    # fc 5,130. Sum 11,171,146; with the 2017 stem BN (+128), 11,171,274.
    spec = load_spec(SPECS_DIR / "references" / "preact-resnet18.toml")
    assert count_params(build_model(spec.variant("as-coded").recipe.model)) == 11_171_146
    assert count_params(build_model(spec.variant("readme-2017").recipe.model)) == 11_171_274


def test_preact_bottleneck_by_hand() -> None:
    # stem 432; block 1 (16 -> 8 -> 32): BN 32 + 1x1 128 + BN 16 + 3x3 576 + BN 16 + 1x1 256 + projection 512
    # = 1,536; block 2 (32 -> 16 -> 64, stride 2): 64 + 512 + 32 + 2,304 + 32 + 1,024 + 2,048 = 6,016;
    # final BN 128; fc 650. Sum 8,762.
    model = _build(block="preact_bottleneck", blocks=(1, 1), widths=(8, 16), strides=(1, 2), stem_width=16)
    assert count_params(model) == 8_762 and model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_preact_with_option_a_by_hand() -> None:
    # stem 432; block 1 (16 -> 16): 32 + 2,304 + 32 + 2,304 = 4,672; block 2 (16 -> 32, stride 2): 32 + 4,608
    # + 64 + 9,216 = 13,920 and no shortcut parameters; final BN 64; fc 330. Sum 19,418.
    model = _build(block="preact_basic", blocks=(1, 1), widths=(16, 32), strides=(1, 2), stem_width=16, shortcut="pad")
    assert count_params(model) == 19_418


def test_dropout_between_sits_between_the_two_convolutions() -> None:
    model = _build(block="preact_basic", blocks=(2,), widths=(16,), strides=(1,), stem_width=16, dropout_between=0.3)
    block = model.stages[0][0]
    assert isinstance(block.between, Dropout) and block.between.p == 0.3
    order = [name for name, _ in block.named_children()]
    assert order.index("conv1") < order.index("between") < order.index("conv2")
    seen = []
    handles = [
        getattr(block, n).register_forward_hook(lambda *_, n=n: seen.append(n)) for n in ("conv1", "between", "conv2")
    ]
    model.train()(torch.randn(2, 3, 32, 32))
    assert seen[:3] == ["conv1", "between", "conv2"]
    for handle in handles:
        handle.remove()


@pytest.mark.parametrize("block", ["basic", "bottleneck", "preact_basic", "preact_bottleneck"])
def test_a_folded_teacher_computes_what_the_unfolded_one_does(block: str) -> None:
    # BN folding must only merge a BN that follows its conv: in pre-activation blocks most BNs come first.
    from harness.models import fold_batchnorm

    torch.manual_seed(0)
    model = _build(block=block, blocks=(1, 1), widths=(8, 16), strides=(1, 2), stem_width=8)
    for module in model.modules():  # BN statistics that are not the identity, as after training
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    x = torch.randn(4, 3, 32, 32)
    expected = model.eval()(x)
    assert torch.allclose(fold_batchnorm(model.eval())(x), expected, atol=1e-4)


def test_final_norm_is_for_pre_activation_networks_only() -> None:
    problems = CifarResNetConfig(
        arch="cifar_resnet", blocks=(1,), widths=(8,), strides=(1,), final_norm=True
    ).problems()
    assert problems == [("final_norm", "a post-activation network (basic) already ends in BN-ReLU")]
    narrowing = CifarResNetConfig(arch="cifar_resnet", blocks=(1, 1), widths=(32, 16), strides=(1, 2), shortcut="pad")
    assert [key for key, _ in narrowing.problems()] == ["shortcut"]
