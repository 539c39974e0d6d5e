"""`harness speed` and the runtime choices of `harness run`: precision, layout and augmentation path."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch

from harness.cli import main
from harness.common.device import Runtime, cpu_has_bf16_units
from harness.common.events import Silent
from harness.measure import speed
from harness.spec import load_spec
from harness.train.loop import run
from harness.train.request import RunOptions, resolve_layout, resolve_precision
from tests.conftest import SPECS_DIR, resnet12_grid_text

SPEED_KEYS = {
    "bare_img_s",
    "harness_img_s",
    "naive_img_s",
    "data_harness_img_s",
    "data_naive_img_s",
    "harness_over_bare",
    "harness_over_naive",
    "data_over_naive",
    "mfu",
}


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_speed_reports_every_figure(capsys, spec_copy, precision: str) -> None:
    # batches of 32, not the recipe's 256: a CPU without bf16 units emulates bf16 at about 16 images/s
    spec = spec_copy(resnet12_grid_text(extra="train.batch_size = 32"))
    argv = [
        "speed",
        str(spec),
        "--variant",
        "resnet12-grid",
        "--steps",
        "1",
        "--json",
        "--precision",
        precision,
    ]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    result = json.loads(out)
    assert SPEED_KEYS <= set(result) and all(result[k] > 0 for k in SPEED_KEYS) and result["batch_size"] == 32
    emulated = precision == "bf16" and not cpu_has_bf16_units()
    assert ("PyTorch emulates bf16 here" in err) == emulated
    # the peak's matmul stops doubling before one takes half a second: never 2048 where bf16 is emulated (a load
    # only makes it smaller); elsewhere the size depends on the machine and its load (the fake-clock test fixes it)
    assert result["matmul_size"] in ((256, 512, 1024) if emulated else (256, 512, 1024, 2048))
    assert result["harness_over_bare"] == pytest.approx(result["harness_img_s"] / result["bare_img_s"])
    assert result["mfu"] == pytest.approx(result["achieved_flops"] / result["matmul_peak_flops"])
    assert result["precision"] == precision and result["matmul_dtype"] == (
        "bfloat16" if precision == "bf16" else "float32"
    )
    # forward + backward of the student is about 3x its forward FLOPs (2 per MAC)
    assert result["train_flops_per_image"] == pytest.approx(3 * 2 * 28_754_560, rel=0.05)
    assert result["estimate"]["hours_here"] > result["estimate"]["hours_gpu"] > 0


def test_precision_and_layout_choices() -> None:
    recipe = load_spec(SPECS_DIR / "dmsresnet.toml").variant().recipe
    assert (resolve_precision(recipe, "cpu"), resolve_layout(recipe, "cpu")) == ("fp32", True)
    assert (resolve_precision(recipe, "cuda"), resolve_layout(recipe, "mps")) == ("bf16", False)
    assert (resolve_precision(recipe, "cpu", "bf16"), resolve_layout(recipe, "cuda", "off")) == ("bf16", False)
    strict = recipe.model_copy(
        update={"train": recipe.train.model_copy(update={"allow_bf16": False, "allow_channels_last": False})}
    )
    assert (resolve_precision(strict, "cuda"), resolve_layout(strict, "cuda")) == ("fp32", False)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        cpu = Runtime.for_device(torch.device("cpu"), "bf16", channels_last=False)
    assert any("PyTorch emulates bf16 here" in str(w.message) for w in said) == (not cpu_has_bf16_units())
    assert cpu.deviations() == ["precision: bf16 autocast on cpu (the recipes trained in fp32)"]
    assert Runtime.for_device(torch.device("cpu"), "fp32", True).deviations() == ["memory format: channels_last"]


@pytest.mark.parametrize("augment", ["batched", "torchvision"])
def test_both_augmentation_paths_train_and_are_recorded(jpeg_archive: Path, tmp_path: Path, augment: str) -> None:
    # fp32: a CPU without bf16 units emulates bf16 about 10x slower (test_runtime.py trains and records bf16)
    options = RunOptions(profile="smoke", subset=128, data=str(jpeg_archive), device="cpu", augment=augment)
    record = run(load_spec(SPECS_DIR / "se-resnet3343.toml"), "as-coded", options, tmp_path, Silent())
    assert record.status == "complete" and record.augment_pipeline == augment
    assert any(d.startswith("augmentation: ") for d in record.deviations)


def test_gpu_estimate_is_labelled_an_assumption_until_a_measured_rate_exists(tmp_path: Path) -> None:
    from harness.measure.gpu import gpu_rate

    per_image = 2e9
    assumed = gpu_rate("resnet10/resnet10-onecycle", per_image, tmp_path / "absent.json")
    assert assumed.flops_per_s == pytest.approx(0.25 * 989e12) and assumed.basis.startswith("assumed: 25%")
    rates = tmp_path / "gpu_rates.json"
    rates.write_text(
        json.dumps(
            {
                "device": "NVIDIA H200",
                "date": "2026-12-01",
                "source": "make gpu-check",
                "flops_per_s": 5e13,
                "img_s": {"resnet10/resnet10-onecycle": 40_000},
            }
        )
    )
    measured = gpu_rate("resnet10/resnet10-onecycle", per_image, rates)
    assert measured.flops_per_s == pytest.approx(40_000 * per_image)
    assert measured.device == "NVIDIA H200" and "2026-12-01" in measured.basis and "assumed" not in measured.basis
    other = gpu_rate("dmsresnet/as-coded", per_image, rates)  # no rate of its own: the measured FLOP/s
    assert other.flops_per_s == 5e13 and "other recipes" in other.basis


def test_the_gpu_estimate_counts_the_teachers_forward_and_a_floor_per_step(monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    from harness.measure.compute import step_flops
    from harness.measure.gpu import GPU_STEP_FLOOR_S, full_recipe_estimate
    from harness.measure.size import size_of
    from harness.models import build_model
    from harness.train import estimate as estimate_module
    from harness.train.estimate import Estimate, estimate_line

    spec = load_spec(SPECS_DIR / "dmsresnet.toml")
    student_cfg, teacher_cfg = spec.variant("as-coded").recipe.model, spec.variant("teacher").recipe.model
    runtime = Runtime.for_device(torch.device("cpu"))
    student, teacher = build_model(student_cfg).train(), build_model(teacher_cfg).eval()
    # fvcore's MACs, counted apart from PyTorch's FLOP counter: a step is the student's forward and backward
    # (3 forwards, 2 FLOPs a MAC) and the teacher's forward, 4.79 + 2.60 GFLOP an image for report 000
    expected = 6 * size_of(student_cfg).macs + 2 * size_of(teacher_cfg).macs
    assert step_flops(student, teacher, 4, runtime) == pytest.approx(expected, rel=0.02)
    assert expected / 1e9 == pytest.approx(7.39, abs=0.01)

    counted = []
    monkeypatch.setattr(estimate_module, "step_flops", lambda model, teacher, *_: counted.append(teacher) or 7e9)
    ctx = types.SimpleNamespace(
        recipe=spec.variant("as-coded").recipe,
        splits=types.SimpleNamespace(train=range(45_000)),
        runtime=runtime,
        budget=types.SimpleNamespace(is_full=True, profile="full"),
        spec=spec,
        variant=spec.variant("as-coded"),
    )
    estimate_line(ctx, Estimate(3600.0, 200, 200 * 352, 100.0, 1000.0), teacher)
    assert counted == [teacher]  # the GPU figure of a distilling run counts its teacher's forward
    # report 003's ResNet-12 grid: 29 MMACs an image, 12,320 optimizer steps of 256 images; by FLOPs alone an
    # H100 would take 2 seconds, but no eager step takes under the floor
    grid = load_spec(SPECS_DIR / "resnet10.toml").variant("resnet12-grid").recipe
    estimate = full_recipe_estimate(grid, "resnet10/resnet12-grid", 6 * 29e6, 1000.0)
    assert estimate["steps"] == 12_320
    assert estimate["hours_gpu"] * 3600 == pytest.approx(12_320 * GPU_STEP_FLOOR_S)
    assert "12,320 steps at the assumed floor of 3 ms a step" in estimate["gpu_basis"]


def test_the_matmul_peak_doubles_its_side_while_one_matmul_stays_under_half_a_second(monkeypatch) -> None:
    # a fake matmul whose time grows with the work, 0.01 s at 256: 512 takes 0.08 s, and 1024 would take 0.64 s
    monkeypatch.setattr(speed, "_matmul_seconds", lambda runtime, dtype, size: 0.01 * (size / 256) ** 3)
    flops, size = speed.matmul_peak(Runtime(torch.device("cpu")), torch.bfloat16)
    assert size == 512 and flops == pytest.approx(2 * 512**3 / 0.08)
    monkeypatch.setattr(speed, "_matmul_seconds", lambda runtime, dtype, size: 1e-4)
    assert speed.matmul_peak(Runtime(torch.device("cpu")), torch.float32)[1] == 2048
