"""Every setting CUDA runs take by default, taken on the CPU: one code path, the device a parameter.

common/device.py lists what is truly CUDA-only (a synchronize, the device's name, two process-wide flags);
everything else a GPU run does differently is a setting of `Runtime`, and each is exercised here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from harness.common.device import CUDA_ONLY, CUDA_READBACK_EVERY, Runtime, cpu_has_bf16_units
from harness.common.events import Silent
from harness.data.augment import Pipeline
from harness.data.cifar10 import TrainingImages
from harness.spec import load_spec
from harness.train import request as context
from harness.train.loop import run
from harness.train.request import RunOptions
from harness.train.step import build_optimizer
from tests.conftest import SPECS_DIR, resnet12_grid_text

R10 = load_spec(SPECS_DIR / "resnet10.toml")
CPU = torch.device("cpu")


def test_cuda_defaults_are_settings_and_the_cuda_only_list_is_short() -> None:
    cuda = Runtime.for_device(torch.device("cuda"), "bf16", channels_last=True)
    assert (cuda.readback_every, cuda.fused_optimizer, cuda.pin_memory, cuda.cudnn_benchmark) == (10, True, True, True)
    assert cuda.autocast == torch.bfloat16 and cuda.channels_last
    cpu = Runtime.for_device(CPU)
    assert (cpu.readback_every, cpu.fused_optimizer, cpu.pin_memory, cpu.autocast) == (1, False, False, None)
    # `but` changes what it is given and nothing else, on a copy: a `but` that rebuilt the runtime from its
    # defaults would drop the CPU's device or CUDA's bf16 and layout, one that mutated would change the original
    taken = cpu.but(readback_every=CUDA_READBACK_EVERY, fused_optimizer=True)
    assert (taken.device, taken.readback_every, taken.fused_optimizer, taken.pin_memory) == (CPU, 10, True, False)
    unfused = cuda.but(fused_optimizer=False)
    assert (unfused.autocast, unfused.channels_last, unfused.readback_every, unfused.pin_memory) == (
        torch.bfloat16,
        True,
        10,
        True,
    )
    assert cpu.fused_optimizer is False and cuda.fused_optimizer is True
    Runtime.for_device(CPU).sync()  # a no-op on the CPU, never an error


def test_only_the_cuda_only_list_branches_on_cuda() -> None:
    """What the module docstring promises: in common/device.py only the CUDA_ONLY functions, plus those that
    pick the device and its defaults, mention CUDA. A Runtime method that grew its own CUDA branch (images
    moved differently on CUDA, say) would be a setting no CPU test exercises, and fails here."""
    import ast

    from harness.common import device

    tree = ast.parse(Path(device.__file__).read_text(encoding="utf-8"))

    def code(function: ast.FunctionDef) -> str:  # its body without the docstring, which may name CUDA freely
        body = function.body[1:] if ast.get_docstring(function) is not None else function.body
        return "\n".join(ast.unparse(statement) for statement in body).lower()

    functions = [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)]
    branching = {f.name for f in functions if any(word in code(f) for word in ("cuda", "cudnn", "cublas"))}
    assert branching == {*CUDA_ONLY, "resolve_device", "for_device"}
    assert all(hasattr(Runtime, name) or hasattr(device, name) for name in CUDA_ONLY)


def _with_runtime(monkeypatch: pytest.MonkeyPatch, **settings: object) -> None:
    """Runs built from now on use the CPU runtime with these settings (CUDA's, say)."""
    for_device = Runtime.for_device

    def patched(*args: object, **kwargs: object) -> Runtime:
        return for_device(*args, **kwargs).but(**settings)

    monkeypatch.setattr(context.Runtime, "for_device", patched)


def test_a_nan_is_caught_at_the_next_read_back_every_10_steps(jpeg_archive: Path, tmp_path: Path, monkeypatch) -> None:
    from harness.train import step

    _with_runtime(monkeypatch, readback_every=CUDA_READBACK_EVERY)
    calls = {"n": 0}
    real = step.training_loss

    def poisoned(*args: object, **kwargs: object) -> torch.Tensor:
        calls["n"] += 1
        loss = real(*args, **kwargs)
        return loss * float("nan") if calls["n"] == 3 else loss

    monkeypatch.setattr(step, "training_loss", poisoned)
    options = RunOptions(profile="smoke", epochs=2, subset=1024, data=str(jpeg_archive), device="cpu")
    record = run(R10, "resnet12-grid", options, tmp_path, Silent())  # 4 steps an epoch at batch 256
    assert record.status == "diverged" and record.diverged_at["epoch"] == 1  # the first epoch, counted from 1
    assert record.diverged_at["step"] == 3 and record.diverged_at["loss"] == "nan"  # the epoch's last step reads back


def test_a_fused_sgd_step_equals_the_unfused_one() -> None:
    recipe = R10.variant("resnet10-grid").recipe  # SGD, momentum 0.9, weight decay 1e-4
    torch.manual_seed(0)
    models = [
        nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Flatten(), nn.Linear(8 * 30 * 30, 10)) for _ in range(2)
    ]
    models[1].load_state_dict(models[0].state_dict())
    optimizers = [build_optimizer(models[0], recipe, fused=False), build_optimizer(models[1], recipe, fused=True)]
    x, y = torch.randn(16, 3, 32, 32), torch.randint(0, 10, (16,))
    for _ in range(3):
        for model, optimizer in zip(models, optimizers, strict=True):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
    for a, b in zip(models[0].parameters(), models[1].parameters(), strict=True):
        assert torch.allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """PyTorch on one thread for the test. The bf16 CPU kernels open many short parallel regions, and under the
    suite's OMP_WAIT_POLICY=PASSIVE each wakes a sleeping thread: beside a busy process a 3-epoch bf16 run took
    150 s on two threads and 12 s on one (2026-12-06)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_bf16_autocast_on_the_cpu_learns_like_fp32(
    jpeg_archive: Path, tmp_path: Path, spec_copy, one_thread: None
) -> None:
    # The band: within 10 points of fp32 after 2 epochs on 1,024 images, both above chance by 4 standard errors of a
    # guesser's accuracy on the test images (10% + 3.75 points on 1,024): a recipe change moves these figures, so
    # the floor is chance's, not a figure a run once gave. ResNet-12 at a quarter of its width (4/8/16 channels) in
    # batches of 64: a CPU without bf16 units emulates bf16 about 10 times slower than fp32 (seeds 0-2 gave 19-25%
    # in fp32 and 24-26% in bf16, 15-19 s for a bf16 run on one idle core; on 2,048 images it took 60 s in CI).
    narrow = (("widths = [16, 32, 64]", "widths = [4, 8, 16]"), ("stem_width = 16", "stem_width = 4"))
    spec = load_spec(spec_copy(resnet12_grid_text(narrow, extra="train.batch_size = 64")))
    options = RunOptions(profile="smoke", epochs=2, subset=1024, data=str(jpeg_archive), device="cpu")
    fp32 = run(spec, "resnet12-grid", options, tmp_path, Silent())
    with pytest.warns(UserWarning) if not cpu_has_bf16_units() else contextlib.nullcontext():
        bf16 = run(spec, "resnet12-grid", dataclasses.replace(options, precision="bf16"), tmp_path, Silent())
    assert bf16.device["autocast"] == "bfloat16" and fp32.device["autocast"] is None
    assert any(d.startswith("precision: bf16 autocast") for d in bf16.deviations)
    assert not any(d.startswith("precision: ") for d in fp32.deviations)
    assert fp32.recipe["model"]["widths"] == [4, 8, 16] and fp32.recipe["train"]["batch_size"] == 64
    chance = 10 + 4 * 100 * math.sqrt(0.1 * 0.9 / fp32.budget["test_images"])
    assert min(fp32.test_acc, bf16.test_acc) > chance and abs(fp32.test_acc - bf16.test_acc) < 10


def test_pinned_copies_on_the_cpu_give_the_same_batches() -> None:
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (64, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, 64)
    pipeline = Pipeline(R10.variant("resnet12-grid").recipe.augment.train, (0.5,) * 3, (0.25,) * 3)
    batches = []
    for pinned in (False, True):
        source = TrainingImages(images, labels, pipeline, "torchvision", Runtime(CPU, pin_memory=pinned))
        torch.manual_seed(0)  # the per-sample transforms draw from the global generator
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # without an accelerator PyTorch says it pins nothing
            batches.append(list(source.batches(16, torch.Generator().manual_seed(1), torch.Generator().manual_seed(2))))
    assert len(batches[0]) == len(batches[1]) == 4
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(*batches, strict=True))


def test_the_layout_setting_puts_images_and_models_in_channels_last() -> None:
    runtime = Runtime(CPU, channels_last=True)
    x = runtime.images(torch.randn(2, 3, 32, 32))
    assert x.is_contiguous(memory_format=torch.channels_last)
    model = runtime.model(nn.Conv2d(3, 4, 3))
    assert model.weight.is_contiguous(memory_format=torch.channels_last)


def test_process_settings_apply_on_the_cpu() -> None:
    """The runtime's setting reaches PyTorch's process-wide flag, both ways, from the opposite value: an
    apply_process_settings that forgot the flag (or only ever set it on) fails."""
    before = torch.backends.cudnn.benchmark
    try:
        for wanted in (True, False):
            torch.backends.cudnn.benchmark = not wanted
            Runtime(CPU, cudnn_benchmark=wanted).apply_process_settings()
            assert torch.backends.cudnn.benchmark is wanted
    finally:
        torch.backends.cudnn.benchmark = before
