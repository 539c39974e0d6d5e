"""The estimate said before a run: timed on real steps, unless timing would cost more than a quarter of the
training it estimates (harness/train/estimate.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.spec import load_spec
from harness.train import estimate
from harness.train.loop import run
from harness.train.request import RunOptions, prepare
from harness.train.step import TrainStep
from tests.conftest import SPECS_DIR
from tests.test_train import Heard

RESNET10 = SPECS_DIR / "resnet10.toml"  # resnet12-grid: batches of 256, 5,000 validation images


def test_a_run_too_short_to_time_takes_no_probe_step(
    jpeg_archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Guards the probe that tripled a one-step run: 2 timed steps before its 1.
    steps = []
    real = TrainStep.__call__
    monkeypatch.setattr(TrainStep, "__call__", lambda self, *args: steps.append(1) or real(self, *args))
    heard = Heard()
    options = RunOptions(profile="smoke", subset=64, data=str(jpeg_archive), device="cpu")
    record = run(load_spec(RESNET10), "resnet12-grid", options, tmp_path, heard)
    assert record.status == "complete" and len(steps) == 1  # the run's own step, and no other
    [line] = [m for m in heard.messages if m.startswith("estimate: ")]
    assert line.startswith("estimate: 1 epoch x 64 images (1 step) on ")
    assert line.endswith(": too short to time (timing would add 2 steps to its 1) [smoke budget]")


@pytest.fixture
def fixed_rates(monkeypatch: pytest.MonkeyPatch) -> None:
    """The probe's rates fixed: 100 img/s training, 1,000 scoring."""
    monkeypatch.setattr(estimate, "_RATES", {})
    monkeypatch.setattr(estimate, "_train_rate", lambda *_: 100.0)
    monkeypatch.setattr(estimate, "_eval_rate", lambda *_: 1000.0)


@pytest.mark.parametrize(("subset", "timed"), [(7 * 256, False), (8 * 256, True)])
def test_the_probe_costs_at_most_a_quarter_of_the_training_it_estimates(
    jpeg_archive: Path, tmp_path: Path, fixed_rates: None, subset: int, timed: bool
) -> None:
    # 7 steps of 256 images are too few for the 2-step probe; 8 are timed, at the rates the probe measures
    # (fixed here: 100 img/s training, 1,000 scoring).
    options = RunOptions(profile="smoke", subset=subset, data=str(jpeg_archive), device="cpu")
    ctx = prepare(load_spec(RESNET10), "resnet12-grid", options, tmp_path)
    said = estimate.estimate_run(ctx, None, 0)
    assert (said.epochs, said.steps) == (1, subset // 256)
    if not timed:
        assert said.seconds is None and said.train_img_s is None
        assert "too short to time (timing would add 2 steps to its 7)" in estimate.estimate_line(ctx, said, None)
        return
    # one epoch of 2,048 images at 100 img/s, 512 validation images and the test set's 2,048 twice at 1,000
    assert said.seconds == pytest.approx(2048 / 100 + 512 / 1000 + 2 * 2048 / 1000)
    line = estimate.estimate_line(ctx, said, None)
    assert line.startswith("estimate: 1 epoch x 2,048 images at 100 img/s (29 MMACs/image) on ")
    assert line.endswith("scoring at 1000 img/s: about 0m 25s [smoke budget]")


def test_a_teacher_plan_says_which_run_is_too_short_to_time(
    jpeg_archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(estimate, "_RATES", {})
    monkeypatch.setattr(TrainStep, "__call__", lambda *_: pytest.fail("a step was taken to time a one-step run"))
    spec = load_spec(SPECS_DIR / "dmsresnet.toml")
    options = RunOptions(profile="smoke", subset=64, data=str(jpeg_archive), device="cpu")
    ctx = prepare(spec, "as-coded", options, tmp_path)
    teacher_spec, teacher = spec.teacher_of(ctx.variant)
    assert estimate.teacher_plan(ctx, teacher_spec, teacher) == (
        "teacher: training dmsresnet/teacher first (seed 0), too short to time; then dmsresnet/as-coded, "
        "too short to time"
    )


def test_a_resume_with_no_epoch_left_still_estimates_its_scoring(
    jpeg_archive: Path, tmp_path: Path, fixed_rates: None
) -> None:
    # killed after its last epoch's checkpoint, before testing: no step is left, but the test passes are
    options = RunOptions(profile="smoke", subset=64, data=str(jpeg_archive), device="cpu")
    ctx = prepare(load_spec(RESNET10), "resnet12-grid", options, tmp_path)
    said = estimate.estimate_run(ctx, None, ctx.recipe.train.epochs)
    assert (said.epochs, said.steps) == (0, 0)
    assert said.seconds == pytest.approx(2 * 64 / 1000)  # the subset's 64 test images once per selection rule
