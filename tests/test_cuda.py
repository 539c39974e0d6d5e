"""The CUDA paths, on an NVIDIA GPU (`pytest -m cuda`; `make gpu-check` runs them): they skip without one.

On a GPU every default of `Runtime.for_device` is CUDA's (bf16 autocast, channels_last, fused optimizers,
pinned copies, cudnn.benchmark, a loss read-back every 10 steps) and the batched augmentation draws its
random parameters on the device.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from harness.common.events import Silent
from harness.spec import load_spec
from harness.train.loop import run
from harness.train.request import RunOptions
from tests.conftest import SPECS_DIR

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: these tests need an NVIDIA GPU"),
]

R10 = load_spec(SPECS_DIR / "resnet10.toml")


@pytest.mark.parametrize(
    "name", ["crop-pad4", "rotation-30", "jitter-002", "autoaugment", "erasing-random", "chain-002"]
)
def test_batched_augmentation_on_the_device_draws_torchvisions_distribution(jpeg_archive: Path, name: str) -> None:
    from scipy import stats

    from harness.data.augment import Pipeline
    from harness.data.cifar10 import load_cifar10
    from tests.test_augment_batched import CONFIGS, MEAN, REPEATS, STD, summary  # the CPU test's statistics

    data = load_cifar10(jpeg_archive)
    images = torch.from_numpy(data.test_x[:16]).permute(0, 3, 1, 2).contiguous()
    batch = images.repeat(REPEATS, 1, 1, 1)
    pipeline = Pipeline(tuple(CONFIGS[name]), MEAN, STD)
    torch.manual_seed(0)
    per_sample = pipeline.per_sample()
    reference = torch.stack([per_sample(image) for image in batch])
    on_device = pipeline.batched(batch.cuda(), torch.Generator(device="cuda").manual_seed(1)).cpu()
    for stat, values in summary(on_device).items():
        assert stats.ks_2samp(values, summary(reference)[stat]).pvalue > 1e-4, f"{name}: {stat}"


def test_a_smoke_run_learns_on_the_gpu_and_records_its_device(jpeg_archive: Path, tmp_path: Path) -> None:
    options = RunOptions(profile="smoke", epochs=3, subset=4096, data=str(jpeg_archive), device="cuda")
    record = run(R10, "resnet12-grid", options, tmp_path, Silent())
    assert record.status == "complete" and record.test_acc > 25.0
    assert record.device["type"] == "cuda" and "NVIDIA" in record.device["name"]
    assert record.device["autocast"] == "bfloat16" and record.device["channels_last"] is True
    assert record.identity["device_type"] == "cuda" and record.identity["precision"] == "bf16"
    assert json.loads(Path(record.record_path).read_text())["versions"]["cuda"]


def test_a_killed_run_resumes_to_the_same_result_on_the_gpu(jpeg_archive: Path, tmp_path: Path) -> None:
    from tests.test_train import StopAfter

    spec = load_spec(SPECS_DIR / "dmsresnet.toml")
    options = RunOptions(
        profile="smoke", epochs=3, subset=256, data=str(jpeg_archive), device="cuda", deterministic=True
    )
    whole = run(spec, "se-mixup", options, tmp_path / "a", Silent())
    with pytest.raises(KeyboardInterrupt):
        run(spec, "se-mixup", options, tmp_path / "b", StopAfter(2))
    resumed = run(spec, "se-mixup", dataclasses.replace(options, resume=True), tmp_path / "b", Silent())
    strip = [{k: v for k, v in h.items() if k not in ("seconds", "train_images_per_s")} for h in whole.history]
    assert resumed.test_acc == whole.test_acc
    assert [
        {k: v for k, v in h.items() if k not in ("seconds", "train_images_per_s")} for h in resumed.history
    ] == strip


def test_harness_speed_on_the_gpu(capsys) -> None:
    from harness.cli import main

    argv = [
        "speed",
        str(SPECS_DIR / "resnet10.toml"),
        "--device",
        "cuda",
        "--precision",
        "bf16",
        "--steps",
        "5",
        "--json",
    ]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["device"].startswith("NVIDIA") and result["precision"] == "bf16"
    assert result["harness_img_s"] > 0 and 0 < result["mfu"] < 1.5
