"""Corruptions are deterministic and graded; `harness eval` scores a saved model on clean and corrupted data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main
from harness.common.events import Silent
from harness.data.corrupt import CORRUPTIONS, PARAMETERS, corrupt
from harness.measure.evaluation import EvalRequest, evaluate_checkpoint
from harness.spec import load_spec
from harness.train.loop import run
from harness.train.request import RunOptions
from tests.conftest import SPECS_DIR


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_corruptions_are_deterministic_and_worsen_with_severity(images: np.ndarray, name: str) -> None:
    outs = [corrupt(images, name, s) for s in (1, 2, 3)]
    assert all(o.shape == images.shape and o.dtype == np.uint8 for o in outs)
    assert np.array_equal(outs[1], corrupt(images, name, 2))
    change = [np.abs(o.astype(int) - images).mean() for o in outs]
    assert 0 < change[0] < change[1] < change[2]


def test_corruption_arithmetic(images: np.ndarray) -> None:
    flat = np.full((2, 32, 32, 3), 100, dtype=np.uint8)
    assert (corrupt(flat, "brightness", 2) == 100 + 0.2 * 255).all()
    half = np.concatenate([np.zeros((1, 32, 16, 3)), np.full((1, 32, 16, 3), 200)], axis=2).astype(np.uint8)
    contrasted = corrupt(half, "contrast", 1)  # 0.75 of the way from the mean (100)
    assert contrasted[0, 0, 0, 0] == 25 and contrasted[0, 0, 31, 0] == 175
    noise = corrupt(np.full((64, 32, 32, 3), 128, dtype=np.uint8), "gaussian_noise", 1).astype(float) / 255
    assert noise.std() == pytest.approx(PARAMETERS["gaussian_noise"][0], rel=0.05)


def test_eval_command_on_a_saved_model(jpeg_archive: Path, smoke_runs: Path, tmp_path: Path, capsys) -> None:
    options = RunOptions(profile="smoke", subset=64, data=str(jpeg_archive), device="cpu")
    record = run(load_spec(SPECS_DIR / "resnet10.toml"), "resnet12-grid", options, smoke_runs, Silent())
    final = Path(record.checkpoint_dir) / "final.pt"
    assert (
        main(
            [
                "eval",
                str(final),
                "--data",
                str(jpeg_archive),
                "--subset",
                str(record.budget["test_images"]),
                "--json",
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    out = json.loads(captured.out)  # stdout holds the JSON alone
    assert out["test_acc"] == pytest.approx(record.test_acc)  # the same images, the same model
    assert set(out["robustness"]["per_corruption"]) == set(CORRUPTIONS)
    images = record.budget["test_images"]
    plan = (
        f"scoring {images:,} test images, clean and under 5 corruptions x 3 severities: {16 * images:,} images at about"
    )
    assert captured.err.startswith(plan)  # said up front, on stderr, with the time it will take here
    assert all(len(v) == 3 for v in out["robustness"]["per_corruption"].values())
    assert main(["eval", str(tmp_path / "missing.pt")]) == 2
    assert "no such checkpoint file" in capsys.readouterr().err
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"junk")
    assert main(["eval", str(bad), "--no-corruptions"]) == 2
    assert "unreadable" in capsys.readouterr().err


def test_a_run_can_score_corruptions(jpeg_archive: Path, tmp_path: Path) -> None:
    """The run's corrupted figures are its selected model's on its corrupted test images: `harness eval` of
    final.pt gives them again exactly (one layout, one batch size), and the mean is theirs. Catches a run
    that scores clean images or another model, a mean over part of the table, and a record that names other
    parameters than those its figures were scored with."""
    options = RunOptions(
        profile="smoke", subset=64, data=str(jpeg_archive), device="cpu", robustness=True, channels_last="off"
    )
    record = run(load_spec(SPECS_DIR / "resnet10.toml"), "resnet12-grid", options, tmp_path, Silent())
    robust, images = record.robustness, record.budget["test_images"]
    request = EvalRequest(Path(record.checkpoint_dir) / "final.pt", str(jpeg_archive), images, "cpu", corruptions=True)
    again = evaluate_checkpoint(request, Silent())["robustness"]
    assert set(robust["per_corruption"]) == set(CORRUPTIONS)
    for name, by_severity in again["per_corruption"].items():
        assert by_severity == robust["per_corruption"][name], name
    values = [acc for by_severity in robust["per_corruption"].values() for acc in by_severity.values()]
    assert len(values) == 3 * len(CORRUPTIONS) and robust["mean"] == pytest.approx(sum(values) / len(values))
    assert robust["parameters"] == again["parameters"] == {name: list(v) for name, v in PARAMETERS.items()}


def test_evals_plan_costs_at_most_a_quarter_of_the_scoring_it_plans(
    jpeg_archive: Path, smoke_runs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness.measure import evaluation

    options = RunOptions(profile="smoke", subset=64, data=str(jpeg_archive), device="cpu")
    record = run(load_spec(SPECS_DIR / "resnet10.toml"), "resnet12-grid", options, smoke_runs, Silent())
    scored: list[int] = []
    real = evaluation.correct_mask
    monkeypatch.setattr(
        evaluation, "correct_mask", lambda model, x, *rest: scored.append(len(x)) or real(model, x, *rest)
    )
    request = EvalRequest(Path(record.checkpoint_dir) / "final.pt", str(jpeg_archive), 256, "cpu", corruptions=False)
    assert evaluate_checkpoint(request, Silent())["test_images"] == 256
    probe, clean = scored[:2], scored[2:]  # a warm-up and a timed batch, then the clean pass
    assert sum(clean) == 256 and 0 < sum(probe) <= 256 / 4
