"""Each augmentation op does the arithmetic its spec parameters say (per-sample torchvision path)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF

from harness.data.augment import OPS, Pipeline

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)


def op(name: str, **params):
    return OPS[name].model_validate({"op": name, **params}).torchvision()


def image(seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def binomial_ok(hits: int, n: int, p: float) -> bool:
    """Within 5 standard deviations of n * p: a false alarm about once in 3 million runs."""
    return abs(hits - n * p) <= 5 * math.sqrt(n * p * (1 - p)) + 1


@pytest.mark.parametrize("mode", ["constant", "reflect"])
def test_random_crop_is_a_window_of_the_padded_image(mode: str) -> None:
    torch.manual_seed(0)
    x = image()
    padded = F.pad(x.float().unsqueeze(0), (4, 4, 4, 4), mode=mode).squeeze(0)
    crop = op("random_crop", size=32, padding=4, padding_mode=mode)
    offsets = set()
    for _ in range(200):
        out = crop(x).float()
        match = [(i, j) for i in range(9) for j in range(9) if torch.equal(padded[:, i : i + 32, j : j + 32], out)]
        assert match, "every crop is a 32x32 window of the padded image"
        offsets.add(match[0])
    assert len(offsets) > 40  # offsets spread over the 9 x 9 grid
    if mode == "constant":
        assert any(i in (0, 8) or j in (0, 8) for i, j in offsets)  # zero borders do appear


@pytest.mark.parametrize("p", [0.0, 0.2, 0.5, 1.0])
def test_hflip_probability(p: float) -> None:
    torch.manual_seed(1)
    x = image()
    flip = op("hflip", p=p)
    flips = sum(torch.equal(flip(x), x.flip(-1)) for _ in range(2000))
    assert binomial_ok(flips, 2000, p)


def test_rotation_angle_is_uniform_in_the_range() -> None:
    torch.manual_seed(2)
    rotate = op("rotation", degrees=5)
    angles = torch.tensor([rotate.make_params([image()])["angle"] for _ in range(4000)])
    assert angles.min() >= -5 and angles.max() <= 5
    assert abs(angles.mean().item()) < 0.15 and angles.var().item() == pytest.approx(100 / 12, rel=0.08)


def test_color_jitter_factors_stay_in_range() -> None:
    torch.manual_seed(3)
    gray = torch.full((3, 32, 32), 100, dtype=torch.uint8)
    jitter = op("color_jitter", brightness=0.1)
    values = torch.tensor([jitter(gray).float().mean().item() for _ in range(500)])
    assert values.min() >= 100 * 0.9 - 1 and values.max() <= 100 * 1.1 + 1 and values.std() > 1


def test_grayscale_probability_and_equal_channels() -> None:
    torch.manual_seed(4)
    x = image()
    gray = op("grayscale", p=0.2)
    hits = 0
    for _ in range(2000):
        out = gray(x)
        if torch.equal(out[0], out[1]) and torch.equal(out[1], out[2]):
            hits += 1
    assert binomial_ok(hits, 2000, 0.2)


def test_autocontrast_stretches_each_channel() -> None:
    x = (image() // 4 + 60).to(torch.uint8)  # values 60..123
    out = op("autocontrast", p=1.0)(x)
    assert torch.equal(out, TF.autocontrast(x))
    assert out.amin(dim=(1, 2)).tolist() == [0, 0, 0] and min(out.amax(dim=(1, 2)).tolist()) >= 254  # uint8 rounding


def test_sharpness_matches_the_functional_op() -> None:
    x = image()
    assert torch.equal(op("sharpness", factor=2.0, p=1.0)(x), TF.adjust_sharpness(x, 2.0))
    assert torch.equal(op("sharpness", factor=2.0, p=0.0)(x), x)


def test_autoaugment_uses_the_cifar10_policy() -> None:
    torch.manual_seed(5)
    augment = op("autoaugment", policy="cifar10")
    assert augment.policy.value == "cifar10"
    x = image()
    outs = [augment(x) for _ in range(50)]
    assert all(o.shape == x.shape and o.dtype == torch.uint8 for o in outs)
    assert sum(not torch.equal(o, x) for o in outs) > 25


def test_random_erasing_box_and_random_values() -> None:
    torch.manual_seed(6)
    erase = op("random_erasing", p=1.0, scale=(0.1, 0.2), ratio=(0.5, 2.0), value="random")
    x = torch.full((3, 32, 32), 0.5)
    for _ in range(200):
        changed = (erase(x) != 0.5).any(0)
        rows, cols = changed.any(1).nonzero(), changed.any(0).nonzero()
        h, w = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert changed.sum() == h * w  # one rectangle
        assert 0.1 * 1024 - 2 * 32 <= h * w <= 0.2 * 1024 + 2 * 32  # area fraction, up to integer rounding
        assert 0.5 * 0.8 <= (h / w).item() <= 2.0 * 1.25
    assert binomial_ok(sum((erase(x) != 0.5).any().item() for _ in range(1000)), 1000, 1.0)


def test_pipeline_converts_then_normalises_last() -> None:
    x = image()
    out = Pipeline((), MEAN, STD).per_sample()(x)
    expected = (x.float() / 255 - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)
    assert torch.allclose(out, expected, atol=1e-6)
    pipeline = Pipeline(
        tuple(OPS[n].model_validate({"op": n, "p": 1.0}) for n in ("hflip", "random_erasing")), MEAN, STD
    ).per_sample()
    names = [type(t).__name__ for t in pipeline.transforms]
    assert names == ["RandomHorizontalFlip", "ToDtype", "RandomErasing", "Normalize"]  # erasing sees [0, 1] floats
