"""Every registry entry does what its name says, against expectations derived by hand from its definition.

One test per registry, parametrised over the registry itself (as torchvision's and timm's model tests are):
registering a new model, block, init, optimizer, schedule, augmentation op or corruption without adding its
expected behaviour here fails CI with a KeyError, and `test_every_expectation_names_a_registered_entry`
fails when an entry is removed but its expectation stays. The expected values come from published
formulas, hand-counted parameters and closed-form rates, never from running the code and pinning its output.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from harness.data.augment import OPS
from harness.data.corrupt import CORRUPTIONS, PARAMETERS, corrupt
from harness.models import MODELS, build_model, count_params
from harness.models.blocks import BLOCKS
from harness.models.config import CifarResNetConfig
from harness.models.init import INITS
from harness.train.optim import OPTIMIZERS, SCHEDULES

# --------------------------------------------------------------------------------------------- models


@dataclass(frozen=True)
class ModelCase:
    config: dict[str, Any]
    params: int  # trainable parameters, counted by hand
    weighted_layers: int  # convolutions + linear layers: the depth in a ResNet's name
    output: tuple[int, ...]  # for a (2, 3, 32, 32) input


EXPECTED_MODELS: dict[str, ModelCase] = {
    # ResNet-20 of He et al. 2016, section 4.2: 3 stages of n = 3 basic blocks, widths 16/32/64, strides 1/2/2,
    # a 16-wide stem, option A shortcuts (subsample and zero-pad: no parameters).
    #   stem:    conv 3*16*9 = 432 + BN 2*16 = 32                                                =     464
    #   stage 1: 3 blocks x (2 convs 16*16*9 = 2,304 + 2 BN 32)     = 3 x 4,672                   =  14,016
    #   stage 2: 16*32*9 + 32*32*9 + 2 BN 64 = 13,952; 2 x (2 x 9,216 + 128) = 37,120             =  51,072
    #   stage 3: 32*64*9 + 64*64*9 + 2 BN 128 = 55,552; 2 x (2 x 36,864 + 256) = 147,968          = 203,520
    #   fc:      64*10 + 10                                                                       =     650
    #   total 464 + 14,016 + 51,072 + 203,520 + 650 = 269,722 (the paper's "0.27M").
    # Depth 6n + 2 = 20: the stem, 18 block convs, the classifier.
    "cifar_resnet": ModelCase(
        config={
            "arch": "cifar_resnet",
            "block": "basic",
            "blocks": (3, 3, 3),
            "widths": (16, 32, 64),
            "strides": (1, 2, 2),
            "stem_width": 16,
            "shortcut": "pad",
            "num_classes": 10,
        },
        params=269_722,
        weighted_layers=20,
        output=(2, 10),
    ),
}


@pytest.mark.parametrize("name", MODELS.names())
def test_every_model_builds_its_published_network(name: str) -> None:
    expected = EXPECTED_MODELS[name]  # KeyError: a new model needs its expected network here
    cfg = MODELS[name].config.model_validate(expected.config)
    model = build_model(cfg)
    assert type(model) is type(MODELS[name].build(cfg))  # build_model dispatches on the arch name
    assert count_params(model) == expected.params
    assert sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in model.modules()) == expected.weighted_layers
    torch.manual_seed(0)
    with torch.no_grad():
        out = model.eval()(torch.randn(2, 3, 32, 32))
    assert out.shape == expected.output and torch.isfinite(out).all()


# --------------------------------------------------------------------------------------------- blocks


@dataclass(frozen=True)
class BlockCase:
    expansion: int
    post_activation: bool  # ends in ReLU (He et al. 2016a) rather than at the addition (2016b)
    params: dict[tuple[int, int, int], int]  # (in_ch, width, stride) -> parameters, counted by hand


EXPECTED_BLOCKS: dict[str, BlockCase] = {
    "basic": BlockCase(
        expansion=1,
        post_activation=True,
        params={
            # conv 16*32*9 = 4,608, BN 64, conv 32*32*9 = 9,216, BN 64, projection 1x1 16*32 = 512 + BN 64
            (16, 32, 2): 4_608 + 64 + 9_216 + 64 + 512 + 64,
            # two 16*16*9 = 2,304 convs, two BN 32, identity shortcut
            (16, 16, 1): 2 * 2_304 + 2 * 32,
        },
    ),
    "bottleneck": BlockCase(
        expansion=4,
        post_activation=True,
        params={
            # 1x1 16*8 = 128, BN 16, 3x3 8*8*9 = 576, BN 16, 1x1 8*32 = 256, BN 64, projection 16*32 = 512 + BN 64
            (16, 8, 2): 128 + 16 + 576 + 16 + 256 + 64 + 512 + 64,
            # 1x1 32*8 = 256, BN 16, 576, BN 16, 1x1 8*32 = 256, BN 64, identity shortcut
            (32, 8, 1): 256 + 16 + 576 + 16 + 256 + 64,
        },
    ),
    "preact_basic": BlockCase(
        expansion=1,
        post_activation=False,
        params={
            # BN on the input 32, conv 4,608, BN 64, conv 9,216, projection conv 512 with no BN after it
            (16, 32, 2): 32 + 4_608 + 64 + 9_216 + 512,
            (16, 16, 1): 32 + 2_304 + 32 + 2_304,
        },
    ),
    "preact_bottleneck": BlockCase(
        expansion=4,
        post_activation=False,
        params={
            # BN 32 on the input, 1x1 128, BN 16, 3x3 576, BN 16, 1x1 256, projection conv 512
            (16, 8, 2): 32 + 128 + 16 + 576 + 16 + 256 + 512,
            (32, 8, 1): 64 + 256 + 16 + 576 + 16 + 256,
        },
    ),
}

_BLOCK_CFG = CifarResNetConfig(arch="cifar_resnet", blocks=(1,), widths=(8,), strides=(1,), shortcut="conv")


@pytest.mark.parametrize("name", list(BLOCKS))
def test_every_block_has_its_counted_parameters_and_shape(name: str) -> None:
    expected = EXPECTED_BLOCKS[name]  # KeyError: a new block needs its counts here
    block_type = BLOCKS[name]
    assert block_type.expansion == expected.expansion
    torch.manual_seed(0)
    for (in_ch, width, stride), params in expected.params.items():
        block = block_type(in_ch, width, stride, _BLOCK_CFG).eval()
        assert count_params(block) == params, (in_ch, width, stride)
        x = torch.randn(2, in_ch, 16, 16)
        with torch.no_grad():
            out = block(x)
        assert out.shape == (2, width * expected.expansion, 16 // stride, 16 // stride)
        if stride == 1 and in_ch == width * expected.expansion:
            # With every weight zero the residual branch gives 0, so the block is its identity shortcut,
            # followed by the final ReLU in a post-activation block and by nothing in a pre-activation one.
            for p in block.parameters():
                p.data.zero_()
            with torch.no_grad():
                out = block(x)
            torch.testing.assert_close(out, F.relu(x) if expected.post_activation else x, rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------- inits

# A probe network with one large layer of each kind an init scheme touches. Its BN starts at 0.5 / 0.25, not
# PyTorch's 1 / 0, so that "BN 1/0" and "BN left as built" differ.
CONV_IN, CONV_OUT, K = 64, 128, 3
FC_IN, FC_OUT = 512, 256
CONV_FAN_IN, CONV_FAN_OUT = CONV_IN * K * K, CONV_OUT * K * K  # 576, 1,152

KEPT = ("kept",)  # as the layer was built (PyTorch's default, or the probe's BN values)


def normal(std: float) -> tuple[str, float]:
    return ("normal", std)


def uniform(bound: float) -> tuple[str, float]:
    return ("uniform", bound)


def const(value: float) -> tuple[str, float]:
    return ("const", value)


def kaiming_std(fan: int) -> float:
    return math.sqrt(2.0 / fan)  # He et al. 2015, ReLU gain sqrt 2


XAVIER_RELU_STD = math.sqrt(2.0) * math.sqrt(2.0 / (FC_IN + FC_OUT))  # Glorot & Bengio 2010, gain sqrt 2
ONES_ZEROS = {"bn.weight": const(1.0), "bn.bias": const(0.0)}
BN_KEPT = {"bn.weight": KEPT, "bn.bias": KEPT}

EXPECTED_INITS: dict[str, dict[str, tuple]] = {
    # PyTorch's layer defaults: kaiming_uniform(a = sqrt 5), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)); untouched.
    "pytorch_default": {
        "conv.weight": uniform(1 / math.sqrt(CONV_FAN_IN)),
        "conv.bias": KEPT,
        "fc.weight": uniform(1 / math.sqrt(FC_IN)),
        "fc.bias": KEPT,
        **BN_KEPT,
    },
    "kaiming_fan_out": {
        "conv.weight": normal(kaiming_std(CONV_FAN_OUT)),
        "conv.bias": const(0.0),
        "fc.weight": normal(kaiming_std(FC_IN)),  # kaiming_normal_'s default mode is fan_in
        "fc.bias": const(0.0),
        **ONES_ZEROS,
    },
    "kaiming_fan_in_xavier_fc": {
        "conv.weight": normal(kaiming_std(CONV_FAN_IN)),
        "conv.bias": const(0.0),
        "fc.weight": normal(XAVIER_RELU_STD),
        "fc.bias": const(0.0),
        **BN_KEPT,
    },
    "kaiming_fan_out_xavier_fc": {
        "conv.weight": normal(kaiming_std(CONV_FAN_OUT)),
        "conv.bias": KEPT,  # PyTorch's default conv biases stay
        "fc.weight": normal(XAVIER_RELU_STD),
        "fc.bias": const(0.0),
        **BN_KEPT,
    },
    "kaiming_fan_in": {
        "conv.weight": normal(kaiming_std(CONV_FAN_IN)),
        "conv.bias": const(0.0),
        "fc.weight": normal(kaiming_std(FC_IN)),
        "fc.bias": const(0.0),
        **ONES_ZEROS,
    },
}


class _InitProbe(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(CONV_IN, CONV_OUT, K, bias=True)
        self.bn = nn.BatchNorm2d(CONV_OUT)
        self.fc = nn.Linear(FC_IN, FC_OUT)
        with torch.no_grad():
            self.bn.weight.fill_(0.5)
            self.bn.bias.fill_(0.25)


def _check_tensor(name: str, value: torch.Tensor, before: torch.Tensor, spec: tuple) -> None:
    kind = spec[0]
    if kind == "kept":
        assert torch.equal(value, before), f"{name} should be left as built"
    elif kind == "const":
        assert torch.all(value == spec[1]), f"{name} should be all {spec[1]}"
    elif kind == "normal":
        # 74k-131k samples: the sample std is within 0.3% of the true one (1 s.e.), so 3% cannot flake; a
        # normal draw of that size reaches beyond 3 std, a uniform one never beyond sqrt(3) std.
        std = spec[1]
        assert value.std().item() == pytest.approx(std, rel=0.03), name
        assert abs(value.mean().item()) < 0.03 * std, name
        assert value.abs().max().item() > 3 * std, f"{name} should be normal, not uniform"
    elif kind == "uniform":
        bound = spec[1]
        assert value.abs().max().item() <= bound, name
        assert value.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.03), name
    else:
        raise AssertionError(f"unknown expectation {spec}")


@pytest.mark.parametrize("name", INITS.names())
def test_every_init_draws_the_distribution_it_names(name: str) -> None:
    expected = EXPECTED_INITS[name]  # KeyError: a new init scheme needs its distributions here
    torch.manual_seed(0)
    probe = _InitProbe()
    before = {k: v.detach().clone() for k, v in probe.named_parameters()}
    with torch.no_grad():
        INITS[name](probe)
    params = dict(probe.named_parameters())
    assert set(expected) == set(params)
    for key, spec in expected.items():
        _check_tensor(key, params[key].detach(), before[key], spec)


# ------------------------------------------------------------------------------------------ optimizers

# Three steps on a vector w with the constant gradient g (loss = g . w), each compared with the textbook
# algorithm written out below. w0 and g are chosen so that L2 decay flips the sign of the first component's
# gradient (g + wd w = 0.5 - 1.0 < 0 at wd 0.2): Adam's L2 and AdamW's decoupled decay then part ways.
W0 = np.array([-5.0, 5.0, -2.0])
G = np.array([0.5, -0.2, 3.0])
STEPS = 3
Reference = Callable[[dict[str, Any], np.ndarray, np.ndarray, int], np.ndarray]


def sgd_textbook(cfg: dict[str, Any], w: np.ndarray, g: np.ndarray, steps: int) -> np.ndarray:
    # Sutskever et al. 2013 in PyTorch's documented form: d = g + wd w; b = mu b + (1 - dampening) d (b = d at
    # the first step); nesterov: step along d + mu b; else along b.
    lr, mu, wd = cfg["lr"], cfg.get("momentum", 0.0), cfg.get("weight_decay", 0.0)
    buf = None
    for _ in range(steps):
        d = g + wd * w
        buf = d if buf is None else mu * buf + (1 - cfg.get("dampening", 0.0)) * d
        w = w - lr * (d + mu * buf if cfg.get("nesterov") else buf)
    return w


def _adam(w: np.ndarray, g: np.ndarray, steps: int, lr: float, l2: float, decoupled: float) -> np.ndarray:
    # Kingma & Ba 2015, algorithm 1, with eps outside the square root; L2 decay adds l2 w to the gradient,
    # decoupled decay (Loshchilov & Hutter 2019) shrinks w by lr * wd before the step.
    b1, b2, eps = 0.9, 0.999, 1e-8
    m, v = np.zeros_like(w), np.zeros_like(w)
    for t in range(1, steps + 1):
        w = w * (1 - lr * decoupled)
        d = g + l2 * w
        m, v = b1 * m + (1 - b1) * d, b2 * v + (1 - b2) * d * d
        w = w - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
    return w


def adam_textbook(cfg: dict[str, Any], w: np.ndarray, g: np.ndarray, steps: int) -> np.ndarray:
    return _adam(w, g, steps, cfg["lr"], l2=cfg["weight_decay"], decoupled=0.0)


def adamw_textbook(cfg: dict[str, Any], w: np.ndarray, g: np.ndarray, steps: int) -> np.ndarray:
    return _adam(w, g, steps, cfg["lr"], l2=0.0, decoupled=cfg["weight_decay"])


def adadelta_textbook(cfg: dict[str, Any], w: np.ndarray, g: np.ndarray, steps: int) -> np.ndarray:
    # Zeiler 2012, algorithm 1, with a learning rate on the update and L2 decay, as PyTorch documents it.
    rho, eps, lr, wd = cfg["rho"], cfg["eps"], cfg["lr"], cfg["weight_decay"]
    sq, acc = np.zeros_like(w), np.zeros_like(w)
    for _ in range(steps):
        d = g + wd * w
        sq = rho * sq + (1 - rho) * d * d
        delta = np.sqrt(acc + eps) / np.sqrt(sq + eps) * d
        acc = rho * acc + (1 - rho) * delta * delta
        w = w - lr * delta
    return w


EXPECTED_OPTIMIZERS: dict[str, tuple[dict[str, Any], Reference]] = {
    "sgd": ({"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.2}, sgd_textbook),
    "adam": ({"name": "adam", "lr": 0.01, "weight_decay": 0.2}, adam_textbook),
    "adamw": ({"name": "adamw", "lr": 0.01, "weight_decay": 0.2}, adamw_textbook),
    "adadelta": ({"name": "adadelta", "lr": 1.0, "rho": 0.8, "eps": 1e-4, "weight_decay": 0.2}, adadelta_textbook),
}


class _Vector(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(W0, dtype=torch.float64))


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_every_optimizer_takes_its_textbook_steps(name: str) -> None:
    config, reference = EXPECTED_OPTIMIZERS[name]  # KeyError: a new optimizer needs its update rule here
    model = _Vector()
    optimizer = OPTIMIZERS[name].model_validate(config).build(model)
    g = torch.tensor(G, dtype=torch.float64)
    for _ in range(STEPS):
        optimizer.zero_grad()
        (g * model.w).sum().backward()
        optimizer.step()
    np.testing.assert_allclose(model.w.detach().numpy(), reference(config, W0, G, STEPS), rtol=1e-10, atol=1e-12)


def test_adams_first_step_is_lr_times_the_gradients_sign() -> None:
    # The closed form behind the reference above (Kingma & Ba, section 2.1): m1 / sqrt(v1) = sign(g).
    assert adam_textbook({"lr": 0.01, "weight_decay": 0.0}, W0, G, 1) == pytest.approx(W0 - 0.01 * np.sign(G))


# ------------------------------------------------------------------------------------------- schedules

LR = 0.1


def cos_anneal(start: float, end: float, fraction: float) -> float:
    return end + (start - end) / 2 * (1 + math.cos(math.pi * fraction))


@dataclass(frozen=True)
class ScheduleCase:
    config: dict[str, Any]
    steps: int  # scheduler steps to record, in the schedule's own unit
    lr: Callable[[int], float]  # the closed-form rate at step k
    momentum: Callable[[int], float] | None = None  # for schedules that cycle SGD's momentum
    epochs: int = 10
    steps_per_epoch: int = 10


def _onecycle_lr(k: int) -> float:
    # Smith & Topin 2019 as PyTorch defines OneCycleLR: from max_lr / div_factor = 0.004 up to max_lr 0.1 over
    # the first pct_start * total = 30 steps (0..29, the peak at step 29), then down to 0.004 / 1e4 at step 99,
    # both legs cosine.
    peak, last = 0.3 * 100 - 1, 100 - 1
    low, high = 0.1 / 25, 0.1
    return cos_anneal(low, high, k / peak) if k <= peak else cos_anneal(high, low / 1e4, (k - peak) / (last - peak))


def _onecycle_momentum(k: int) -> float:
    peak, last = 0.3 * 100 - 1, 100 - 1
    return cos_anneal(0.95, 0.85, k / peak) if k <= peak else cos_anneal(0.85, 0.95, (k - peak) / (last - peak))


def _warmup_cosine_lr(k: int) -> float:
    # report 002 as WarmupCosine's docstring defines it: (e + 1) / warmup, then 0.5 (1 + cos(pi (e - warmup) / decay))
    return LR * ((k + 1) / 4 if k < 4 else 0.5 * (1 + math.cos(math.pi * (k - 4) / 10)))


EXPECTED_SCHEDULES: dict[str, list[ScheduleCase]] = {
    "constant": [
        ScheduleCase({"name": "constant"}, 8, lambda k: LR),
        # a chained constant warm-up factor for the first warmup_steps steps (_Schedule's docstring)
        ScheduleCase(
            {"name": "constant", "warmup_steps": 3, "warmup_factor": 0.1}, 8, lambda k: LR * (0.1 if k < 3 else 1)
        ),
    ],
    "cosine": [
        # Loshchilov & Hutter 2017 without restarts; the same closed form continues past t_max (rising again)
        ScheduleCase(
            {"name": "cosine", "t_max": 8, "eta_min": 0.001},
            12,
            lambda k: cos_anneal(LR, 0.001, k / 8),
        ),
    ],
    "warmup_cosine": [
        ScheduleCase({"name": "warmup_cosine", "warmup_epochs": 4, "decay_epochs": 10}, 14, _warmup_cosine_lr),
        # a compressed warm-up: a line from warmup_start_factor at epoch 0 to 1 at the last warm-up epoch
        ScheduleCase(
            {"name": "warmup_cosine", "warmup_epochs": 3, "decay_epochs": 5, "warmup_start_factor": 0.2},
            8,
            lambda k: LR * ((0.2, 0.6, 1.0)[k] if k < 3 else 0.5 * (1 + math.cos(math.pi * (k - 3) / 5))),
        ),
    ],
    "onecycle": [
        # total_steps defaults to epochs x steps per epoch = 10 x 10
        ScheduleCase({"name": "onecycle", "max_lr": 0.1}, 100, _onecycle_lr, momentum=_onecycle_momentum),
    ],
    "step": [ScheduleCase({"name": "step", "step_size": 3, "gamma": 0.5}, 10, lambda k: LR * 0.5 ** (k // 3))],
    "multistep": [
        ScheduleCase(
            {"name": "multistep", "milestones": (2, 5, 7), "gamma": 0.1},
            10,
            lambda k: LR * 0.1 ** sum(k >= m for m in (2, 5, 7)),
        )
    ],
}


@pytest.mark.parametrize("name", SCHEDULES.names())
def test_every_schedule_follows_its_closed_form(name: str) -> None:
    cases = EXPECTED_SCHEDULES[name]  # KeyError: a new schedule needs its closed form here
    for case in cases:
        optimizer = torch.optim.SGD(_Vector().parameters(), lr=LR, momentum=0.9)
        schedule = SCHEDULES[name].model_validate(case.config)
        assert schedule.problems() == [], case.config
        scheduler = schedule.build(optimizer, case.epochs, case.steps_per_epoch)
        for k in range(case.steps):
            group = optimizer.param_groups[0]
            assert group["lr"] == pytest.approx(case.lr(k), rel=1e-9, abs=1e-12), (case.config, k)
            if case.momentum is not None:
                assert group["momentum"] == pytest.approx(case.momentum(k), rel=1e-9), (case.config, k)
            optimizer.step()
            scheduler.step()


# ------------------------------------------------------------------------------------ augmentation ops

N = 64  # images per batch: enough for each random op to show more than one outcome


def _apply(name: str, params: dict[str, Any], x: torch.Tensor, backend: str) -> torch.Tensor:
    op = OPS[name].model_validate({"op": name, **params})
    if backend == "batched":
        return op.batched(x, torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    transform = op.torchvision()
    return torch.stack([transform(image) for image in x])


def _random_image(low: int = 0, high: int = 256, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.integers(low, high, (3, 32, 32), dtype=np.uint8))


def _batch(image: torch.Tensor) -> torch.Tensor:
    return image.unsqueeze(0).repeat(N, 1, 1, 1).contiguous()


def _gray(values: torch.Tensor) -> torch.Tensor:
    """A (32, 32) map -> a 3-channel image with equal channels."""
    return values.unsqueeze(0).repeat(3, 1, 1).contiguous()


def _shifted(image: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """out[i, j] = image[i + dy, j + dx], zero where that falls outside."""
    out = torch.zeros_like(image)
    h, w = image.shape[-2:]
    out[:, max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)] = image[
        :, max(0, dy) : h - max(0, -dy), max(0, dx) : w - max(0, -dx)
    ]
    return out


def _check_random_crop(x: torch.Tensor, out: torch.Tensor) -> None:
    # Cropping 32x32 out of the image padded by 4 with zeros is the image shifted by dy, dx in [-4, 4], zeros
    # entering (the image has no zero pixel of its own); the offsets are random per image.
    image, offsets = x[0], set()
    for result in out:
        found = [(dy, dx) for dy in range(-4, 5) for dx in range(-4, 5) if torch.equal(result, _shifted(image, dy, dx))]
        assert len(found) == 1, "not a shift of the image by at most the padding"
        offsets.add(found[0])
    assert len(offsets) >= 10  # 81 offsets: 64 draws hit about 45 of them


def _check_hflip(x: torch.Tensor, out: torch.Tensor) -> None:
    assert torch.equal(out, x.flip(-1))  # p = 1: every image mirrored left-right


_CENTRE = 15.5  # the centre of a 32-pixel image, in pixel-index coordinates
_RADIUS = torch.hypot(*torch.meshgrid(torch.arange(32.0) - _CENTRE, torch.arange(32.0) - _CENTRE, indexing="ij"))


def _check_rotation(x: torch.Tensor, out: torch.Tensor) -> None:
    # The image is 6 r + 10 at distance r from the centre. A rotation about the centre keeps r; nearest
    # sampling reads a pixel within 0.71 of the exact source point, so inside the disc r <= 15 (whose sources
    # stay inside the image) the value is 6 r + 10 within 6 * 0.71 + 0.5 < 5.
    inner = _RADIUS <= 15
    expected = 6 * _RADIUS + 10
    assert ((out.float() - expected).abs()[:, :, inner] < 5).all(), "not a rotation about the centre"
    # The corner pixel sits at (-15.5, -15.5); rotated by a, its source has a coordinate of magnitude
    # 15.5 (cos a + sin |a|) > 16 (beyond the image's edge) once |a| > 3 degrees, so it takes the fill, 0.
    # Angles are uniform in [-45, 45]: 42 in 45 images (60 of 64 on average) show it; the image has no 0.
    assert (x > 0).all()
    filled = (out[:, :, 0, 0] == 0).all(dim=1)
    assert int(filled.sum()) >= 48
    assert len({image.numpy().tobytes() for image in out}) >= 10  # an angle per image


def _check_color_jitter(x: torch.Tensor, out: torch.Tensor) -> None:
    # A gray image, 40 on the left half and 120 on the right. Hue rotation leaves gray pixels (saturation 0)
    # as they are; brightness multiplies every pixel by one f in [0.5, 1.5] per image, truncated to uint8.
    assert (out == out[:, :1]).all(), "a gray image must stay gray"
    low, high = out[:, 0, :, :16], out[:, 0, :, 16:]
    assert (low == low[:, :1, :1]).all() and (high == high[:, :1, :1]).all(), "each half must stay flat"
    low, high = low[:, 0, 0].int(), high[:, 0, 0].int()
    assert ((20 <= low) & (low <= 60)).all() and ((60 <= high) & (high <= 180)).all()
    assert ((high - 3 * low).abs() < 3).all(), "one factor per image scales both halves"
    assert len(set(low.tolist())) >= 5  # a continuous factor per image


def _check_grayscale(x: torch.Tensor, out: torch.Tensor) -> None:
    # ITU-R 601-2 luma, L = 0.299 R + 0.587 G + 0.114 B, in all three channels: within one level of the
    # conversion back to uint8 (which may truncate), plus 0.03 for the 4-digit coefficients some code uses.
    r, g, b = x.float().unbind(1)
    luma = 0.299 * r + 0.587 * g + 0.114 * b
    assert (out == out[:, :1]).all()
    assert ((out[:, 0].float() - luma).abs() < 1.05).all()


def _check_autocontrast(x: torch.Tensor, out: torch.Tensor) -> None:
    # Each channel's [min, max] stretched linearly onto [0, 255], within the one level that the conversion back
    # to uint8 may truncate (torchvision's float arithmetic can put the maximum at 254.99..., hence 254).
    lo = x.amin(dim=(2, 3), keepdim=True).float()
    hi = x.amax(dim=(2, 3), keepdim=True).float()
    expected = (x.float() - lo) * 255 / (hi - lo)
    assert ((out.float() - expected).abs() <= 1).all()
    assert (out.amin(dim=(2, 3)) == 0).all() and (out.amax(dim=(2, 3)) >= 254).all()


def _check_sharpness(x: torch.Tensor, out: torch.Tensor) -> None:
    # PIL's sharpness: blend the image with its smoothed copy (3x3 kernel 1 1 1 / 1 5 1 / 1 1 1, over 13);
    # factor 2 gives 2 image - smoothed. A 165 dot on 100: smoothed dot (5 165 + 8 100) / 13 = 125, its
    # neighbours (165 + 12 100) / 13 = 105; so the dot becomes 205, its 8 neighbours 95, the rest stays 100.
    expected = torch.full((32, 32), 100.0)
    expected[15:18, 15:18] = 95
    expected[16, 16] = 205
    assert ((out.float() - expected).abs() <= 1).all()


def _check_autoaugment(x: torch.Tensor, out: torch.Tensor) -> None:
    # Every operation of the CIFAR-10 policy (shear, translate, rotate, colour, contrast, brightness,
    # sharpness, posterize, solarize, invert, equalize, autocontrast) treats the three channels alike, so a
    # gray image stays gray; the sub-policies apply their operations at random, so some images change.
    assert out.shape == x.shape and out.dtype == torch.uint8
    assert (out == out[:, :1]).all(), "a gray image must stay gray"
    changed = int((out != x).flatten(1).any(dim=1).sum())
    assert 16 <= changed  # most sub-policies change an image more often than not


def _check_gaussian_blur(x: torch.Tensor, out: torch.Tensor) -> None:
    # sigma 1, 3 taps: weights e^(-1/2) : 1 : e^(-1/2), normalised; a 200 dot on 0 spreads as their outer product.
    side = math.exp(-0.5) / (1 + 2 * math.exp(-0.5))
    mid = 1 / (1 + 2 * math.exp(-0.5))
    expected = torch.zeros(32, 32)
    expected[15:18, 15:18] = 200 * torch.tensor([side, mid, side]).outer(torch.tensor([side, mid, side]))
    assert ((out.float() - expected).abs() <= 1).all()  # centre 40.8, edges 24.8, corners 15.0


def _check_random_erasing(x: torch.Tensor, out: torch.Tensor) -> None:
    # One box per image set to 0 in every channel, the rest untouched. Its area is round(sqrt(A r)) x
    # round(sqrt(A / r)) for A in [0.1, 0.2] x 1,024 and r in [0.5, 2]: from 102.4 - 10.7 to 204.8 + 15.4.
    boxes = set()
    for result in out:
        erased = result == 0
        assert (erased == erased[:1]).all() and (result[~erased] == 0.5).all()
        rows, cols = erased[0].any(dim=1).nonzero(), erased[0].any(dim=0).nonzero()
        top, bottom, left, right = int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1
        assert int(erased[0].sum()) == (bottom - top) * (right - left), "the erased pixels must form a box"
        assert 90 <= (bottom - top) * (right - left) <= 221
        boxes.add((top, bottom, left, right))
    assert len(boxes) >= 10


def _dot(background: int, value: int) -> torch.Tensor:
    image = torch.full((32, 32), background, dtype=torch.uint8)
    image[16, 16] = value
    return _gray(image)


_HALVES = torch.cat([torch.full((32, 16), 40), torch.full((32, 16), 120)], dim=1).to(torch.uint8)
_STRETCHABLE = _random_image(60, 180, seed=1)
_STRETCHABLE[:, 0, 0], _STRETCHABLE[:, 0, 1] = torch.tensor([50, 60, 70]), torch.tensor([150, 200, 190])


@dataclass(frozen=True)
class OpCase:
    params: dict[str, Any]
    image: torch.Tensor  # one CHW image, repeated N times (uint8, or float for needs_float ops)
    check: Callable[[torch.Tensor, torch.Tensor], None]  # (input batch, output batch)


EXPECTED_OPS: dict[str, OpCase] = {
    "random_crop": OpCase({"size": 32, "padding": 4}, _random_image(1), _check_random_crop),
    "hflip": OpCase({"p": 1.0}, _random_image(), _check_hflip),
    "rotation": OpCase({"degrees": 45.0}, _gray((6 * _RADIUS + 10).round().to(torch.uint8)), _check_rotation),
    "color_jitter": OpCase({"brightness": 0.5, "hue": 0.3}, _gray(_HALVES), _check_color_jitter),
    "grayscale": OpCase({"p": 1.0}, _random_image(), _check_grayscale),
    "autocontrast": OpCase({"p": 1.0}, _STRETCHABLE, _check_autocontrast),
    "sharpness": OpCase({"factor": 2.0, "p": 1.0}, _dot(100, 165), _check_sharpness),
    "autoaugment": OpCase({"policy": "cifar10"}, _gray(_random_image()[0]), _check_autoaugment),
    "gaussian_blur": OpCase({"kernel_size": 3, "sigma": (1.0, 1.0), "p": 1.0}, _dot(0, 200), _check_gaussian_blur),
    "random_erasing": OpCase(
        {"p": 1.0, "scale": (0.1, 0.2), "ratio": (0.5, 2.0), "value": 0.0},
        torch.full((3, 32, 32), 0.5),
        _check_random_erasing,
    ),
}


@pytest.mark.parametrize("name", OPS.names())
def test_every_augment_op_does_what_its_name_says(name: str) -> None:
    # tests/test_augment_batched.py compares the two backends' distributions; here each backend must also
    # show the op's own defining property.
    expected = EXPECTED_OPS[name]  # KeyError: a new op needs its defining property here
    x = _batch(expected.image)
    assert x.is_floating_point() == OPS[name].needs_float
    for backend in ("batched", "torchvision"):
        out = _apply(name, expected.params, x, backend)
        assert out.shape == x.shape and out.dtype == x.dtype, backend
        try:
            expected.check(x, out)
        except AssertionError as error:
            raise AssertionError(f"{backend} backend: {error}") from error


# ---------------------------------------------------------------------------------------------- corruptions


def _nhwc(gray: np.ndarray) -> np.ndarray:
    """(H, W) uint8 -> one NHWC image with equal channels."""
    return np.repeat(gray[None, :, :, None], 3, axis=3).astype(np.uint8)


def _check_gaussian_noise(p: float, severity: int) -> None:
    # Mid-grey plus N(0, p) noise in [0, 1] units: std p * 255 levels (clipping is 5 std away, rounding adds
    # 1/12 level^2); 12,288 values put the sample std within 0.7% (1 s.e.) of it.
    images = np.full((4, 32, 32, 3), 128, dtype=np.uint8)
    out = corrupt(images, "gaussian_noise", severity)
    noise = out.astype(np.float64) - 128
    assert noise.std() == pytest.approx(p * 255, rel=0.04)
    assert abs(noise.mean()) < 1
    assert np.array_equal(out, corrupt(images, "gaussian_noise", severity)), "a fixed seed: the same every call"


def _alternating_gain(sigma: float) -> float:
    """A normalised Gaussian's response to a +-1 alternating row, sum (-1)^j k_j / sum k_j."""
    taps = [math.exp(-(j**2) / (2 * sigma**2)) for j in range(-10, 11)]
    return sum((-1) ** j * t for j, t in zip(range(-10, 11), taps, strict=True)) / sum(taps)


def _check_gaussian_blur_corruption(sigma: float, severity: int) -> None:
    # A normalised kernel leaves a flat image as it is; a 28/228 checkerboard (128 +- 100) stays a checkerboard
    # around 128, its amplitude multiplied by the separable blur's gain squared (0.70 at sigma 0.4, 0.02 at 1).
    flat = np.full((1, 32, 32, 3), 100, dtype=np.uint8)
    assert np.array_equal(corrupt(flat, "gaussian_blur", severity), flat)
    board = _nhwc(np.where(np.add.outer(np.arange(32), np.arange(32)) % 2 == 0, 228, 28))
    out = corrupt(board, "gaussian_blur", severity).astype(np.float64)
    amplitude = 100 * _alternating_gain(sigma) ** 2
    sign = np.where(board == 228, 1.0, -1.0)
    assert np.abs(out - (128 + sign * amplitude)).max() <= 1.5


def _check_jpeg(quality: float, severity: int) -> None:
    # A flat colour is one DC coefficient per 8x8 block: its quantisation step at quality >= 40 is at most
    # 16 x 5000 / 40 / 100 = 20, i.e. 20 / 8 = 2.5 levels in Y, Cb and Cr, so at most 1.25 each after rounding
    # to the nearest step; back in RGB (Cr weighs 1.402) that is within 4 levels.
    flat = np.empty((1, 32, 32, 3), dtype=np.uint8)
    flat[...] = (100, 150, 200)
    assert np.abs(corrupt(flat, "jpeg", severity).astype(int) - flat).max() <= 4
    # White noise lives in the high frequencies that quantisation discards: it changes, the more so the lower
    # the quality.
    noisy = np.random.default_rng(0).integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
    errors = [np.abs(corrupt(noisy, "jpeg", s).astype(int) - noisy).mean() for s in (1, 2, 3)]
    assert errors[severity - 1] > 5 and errors == sorted(errors)


def _check_contrast(factor: float, severity: int) -> None:
    # Halves of 50 and 150 (mean 100) move towards the mean by the factor: 100 -+ 50 x factor.
    halves = _nhwc(np.concatenate([np.full((32, 16), 50), np.full((32, 16), 150)], axis=1))
    out = corrupt(halves, "contrast", severity).astype(np.float64)
    assert np.abs(out[:, :, :16] - (100 - 50 * factor)).max() <= 1
    assert np.abs(out[:, :, 16:] - (100 + 50 * factor)).max() <= 1


def _check_brightness(shift: float, severity: int) -> None:
    # shift x 255 added to every pixel, clipped at 255: 100 -> 100 + 255 shift, 250 -> 255.
    halves = _nhwc(np.concatenate([np.full((32, 16), 100), np.full((32, 16), 250)], axis=1))
    out = corrupt(halves, "brightness", severity).astype(np.float64)
    assert np.abs(out[:, :, :16] - (100 + 255 * shift)).max() <= 1
    assert (out[:, :, 16:] == 255).all()


EXPECTED_CORRUPTIONS: dict[str, Callable[[float, int], None]] = {
    "gaussian_noise": _check_gaussian_noise,
    "gaussian_blur": _check_gaussian_blur_corruption,
    "jpeg": _check_jpeg,
    "contrast": _check_contrast,
    "brightness": _check_brightness,
}


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_every_corruption_does_what_its_name_says(name: str) -> None:
    check = EXPECTED_CORRUPTIONS[name]  # KeyError: a new corruption needs its defining property here
    assert len(PARAMETERS[name]) == 3
    for severity, parameter in enumerate(PARAMETERS[name], start=1):
        check(parameter, severity)


# ------------------------------------------------------------------------------------- tables vs registries

TABLES: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "models": (MODELS.names(), EXPECTED_MODELS),
    "blocks": (tuple(BLOCKS), EXPECTED_BLOCKS),
    "inits": (INITS.names(), EXPECTED_INITS),
    "optimizers": (OPTIMIZERS.names(), EXPECTED_OPTIMIZERS),
    "schedules": (SCHEDULES.names(), EXPECTED_SCHEDULES),
    "augment ops": (OPS.names(), EXPECTED_OPS),
    "corruptions": (tuple(CORRUPTIONS), EXPECTED_CORRUPTIONS),
}


@pytest.mark.parametrize("table", list(TABLES))
def test_every_expectation_names_a_registered_entry(table: str) -> None:
    # The parametrised tests above fail for an entry without an expectation; this one for an expectation
    # whose entry was removed or renamed (it would otherwise go silently unused).
    registered, expected = TABLES[table]
    assert set(expected) == set(registered)
