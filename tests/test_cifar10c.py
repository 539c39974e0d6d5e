"""`harness eval --cifar10c DIR`: the official CIFAR-10-C layout, tested on a miniature written in it (the
real one is a 2.7 GB download, impossible here): one `<corruption>.npy` of 5 severities x n images, uint8
NHWC, severity 1 first, and `labels.npy`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.cli import main
from harness.data.corrupt import CIFAR10C_BENCHMARK
from harness.models import build_model
from harness.spec import load_spec
from harness.train import checkpoint
from tests.conftest import SPECS_DIR

PER_SEVERITY = 8
KEPT = [8, 6, 4, 2, 0]  # gaussian_noise: images whose label is the model's own prediction, per severity


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, np.ndarray]:
    """A saved model, 40 images it classifies with a clear margin, and its predictions for them (computed
    here with a plain forward pass, not through the harness's scoring)."""
    folder = tmp_path_factory.mktemp("model")
    recipe = load_spec(SPECS_DIR / "resnet10.toml").variant("resnet12-grid").recipe
    torch.manual_seed(0)
    model = build_model(recipe.model).eval()
    mean, std = torch.tensor(recipe.data.mean).view(1, 3, 1, 1), torch.tensor(recipe.data.std).view(1, 3, 1, 1)
    images = np.random.default_rng(0).integers(0, 256, (400, 32, 32, 3), dtype=np.uint8)
    with torch.no_grad():
        x = (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255 - mean) / std
        logits = model(x)
    top2 = logits.topk(2, dim=1).values
    clear = (top2[:, 0] - top2[:, 1] > 0.05 * logits.std()).numpy()  # no near tie that rounding could flip
    chosen = np.flatnonzero(clear)[: 5 * PER_SEVERITY]
    assert len(chosen) == 5 * PER_SEVERITY
    card = {
        "model_config": recipe.model.model_dump(mode="json"),
        "normalization": {"mean": list(recipe.data.mean), "std": list(recipe.data.std)},
    }
    final = folder / "final.pt"
    checkpoint.save_file(final, {"model": model.state_dict(), "model_card": card})
    return final, images[chosen], logits.argmax(1).numpy()[chosen]


def _miniature(folder: Path, images: np.ndarray, predictions: np.ndarray) -> tuple[dict[str, list[float]], np.ndarray]:
    """gaussian_noise.npy, contrast.npy (the same images, each severity's block reversed) and labels.npy;
    returns the accuracies each severity must score, counted from the predictions."""
    labels = predictions.copy()
    for severity, kept in enumerate(KEPT):
        block = slice(severity * PER_SEVERITY + kept, (severity + 1) * PER_SEVERITY)
        labels[block] = (predictions[block] + 1) % 10  # wrong on purpose
    reversed_order = np.concatenate([np.arange(s * PER_SEVERITY, (s + 1) * PER_SEVERITY)[::-1] for s in range(5)])
    folder.mkdir()
    np.save(folder / "gaussian_noise.npy", images)
    np.save(folder / "contrast.npy", images[reversed_order])
    np.save(folder / "labels.npy", labels)
    hits = predictions[reversed_order] == labels
    contrast = [100 * hits[s * PER_SEVERITY : (s + 1) * PER_SEVERITY].mean() for s in range(5)]
    return {"gaussian_noise": [100 * k / PER_SEVERITY for k in KEPT], "contrast": contrast}, labels


def test_every_corruption_and_severity_is_scored_on_its_own_rows(
    saved, tmp_path: Path, jpeg_archive: Path, capsys
) -> None:
    final, images, predictions = saved
    expected, _ = _miniature(tmp_path / "c10c", images, predictions)
    argv = ["eval", str(final), "--data", str(jpeg_archive), "--subset", "16", "--no-corruptions", "--device", "cpu"]
    assert main([*argv, "--cifar10c", str(tmp_path / "c10c"), "--json"]) == 0
    found = json.loads(capsys.readouterr().out)["cifar10c"]
    assert found["images_per_severity"] == PER_SEVERITY
    for name, accuracies in expected.items():
        assert [found["per_corruption"][name][str(s)] for s in range(1, 6)] == pytest.approx(accuracies)
        assert found["corruption_mean"][name] == pytest.approx(np.mean(accuracies))
    assert found["mean"] == pytest.approx(np.mean([np.mean(a) for a in expected.values()]))
    assert found["benchmark_mean"] is None and len(found["benchmark_missing"]) == len(CIFAR10C_BENCHMARK) - 2
    assert main([*argv, "--cifar10c", str(tmp_path / "c10c")]) == 0
    text = capsys.readouterr().out
    row = next(line for line in text.splitlines() if line.startswith("| gaussian_noise "))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells == ["gaussian_noise", "100.00", "75.00", "50.00", "25.00", "0.00", "50.00"]
    assert "no benchmark mean: 13 of its 15 corruptions are missing" in text


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (lambda d: (d / "labels.npy").unlink(), "labels.npy: missing"),
        (
            lambda d: np.save(d / "contrast.npy", np.zeros((40, 32, 32), np.uint8)),
            "expected uint8 images of shape (40, 32, 32, 3)",
        ),
        (
            lambda d: (d / "contrast.npy").rename(d / "contrats.npy"),
            "not a CIFAR-10-C corruption (did you mean contrast?)",
        ),
        (lambda d: np.save(d / "labels.npy", np.zeros(39, np.int64)), "5 severities of equal size"),
        (lambda d: (d / "labels.npy").write_bytes(b"junk"), "not a readable .npy array"),
    ],
)
def test_a_folder_off_the_official_layout_gets_one_line(saved, tmp_path: Path, breakage, message: str, capsys) -> None:
    final, images, predictions = saved
    _miniature(tmp_path / "c10c", images, predictions)
    breakage(tmp_path / "c10c")
    assert main(["eval", str(final), "--cifar10c", str(tmp_path / "c10c"), "--no-corruptions"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
