"""Training end to end on the real JPEG archive: it learns, resumes exactly, and records everything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from harness import checkpoint
from harness.spec import load_spec, load_specs
from harness.train import RunError, RunOptions, Silent, run
from tests.conftest import SPEC_FILES, SPECS_DIR

RESNET10 = SPECS_DIR / "resnet10.toml"


class StopAfter(Silent):
    """Events that kill the run (as a KeyboardInterrupt would) once `epochs` epochs are stored."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def message(self, text: str) -> None:
        if text.startswith(f"epoch {self.epochs}/"):
            raise KeyboardInterrupt


def test_a_smoke_run_learns_well_above_chance(jpeg_archive: Path, tmp_path: Path) -> None:
    options = RunOptions(profile="smoke", epochs=3, subset=4096, data=str(jpeg_archive), device="cpu")
    record = run(load_spec(RESNET10), "resnet12-grid", options, tmp_path, Silent())
    assert record["status"] == "complete"
    assert record["test_acc"] > 25.0  # chance is 10%
    assert record["history"][-1]["val_acc"] > 25.0
    assert record["history"][0]["train_loss"] > record["history"][-1]["train_loss"]


def _without_timing(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in h.items() if k not in ("seconds", "train_images_per_s")} for h in history]


def test_a_killed_run_resumes_to_the_same_result(jpeg_archive: Path, tmp_path: Path) -> None:
    spec = load_spec(SPECS_DIR / "dmsresnet.toml")  # Lookahead, clipping, mixup and dropout all in play
    options = RunOptions(profile="smoke", epochs=3, subset=64, data=str(jpeg_archive), device="cpu", deterministic=True)
    whole = run(spec, "se-mixup", options, tmp_path / "a", Silent())
    with pytest.raises(KeyboardInterrupt):
        run(spec, "se-mixup", options, tmp_path / "b", StopAfter(2))
    with pytest.raises(RunError, match="pass --resume to continue it"):
        run(spec, "se-mixup", options, tmp_path / "b", Silent())
    resumed = run(spec, "se-mixup", RunOptions(**{**options.__dict__, "resume": True}), tmp_path / "b", Silent())
    assert resumed["test_acc"] == whole["test_acc"]
    assert _without_timing(resumed["history"]) == _without_timing(whole["history"])
    final_a = checkpoint.load_file(Path(whole["checkpoint_dir"]) / "final.pt")["model"]
    final_b = checkpoint.load_file(Path(resumed["checkpoint_dir"]) / "final.pt")["model"]
    assert all(torch.equal(final_a[k], final_b[k]) for k in final_a)


def test_a_finished_run_is_not_repeated(jpeg_archive: Path, tmp_path: Path) -> None:
    options = RunOptions(profile="smoke", subset=64, data=str(jpeg_archive), device="cpu")
    first = run(load_spec(RESNET10), "resnet12-grid", options, tmp_path, Silent())
    messages: list[str] = []

    class Record(Silent):
        def message(self, text: str) -> None:
            messages.append(text)

    again = run(load_spec(RESNET10), "resnet12-grid", options, tmp_path, Record())
    assert again == first and messages and "already complete" in messages[0]


def _variants() -> list[tuple[str, str]]:
    specs, _ = load_specs(SPEC_FILES)
    return [(spec.path.name, name) for spec in specs for name in spec.variants]


@pytest.fixture(scope="module")
def smoke_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("smoke-results")


@pytest.mark.parametrize(("spec_file", "variant"), _variants(), ids=[f"{s[:-5]}/{v}" for s, v in _variants()])
def test_every_variant_runs_at_the_smoke_budget(
    jpeg_archive: Path, smoke_results: Path, spec_file: str, variant: str
) -> None:
    spec = load_spec(SPECS_DIR / spec_file)
    options = RunOptions(profile="smoke", subset=64, data=str(jpeg_archive), device="cpu")
    record = run(spec, variant, options, smoke_results, Silent())
    assert record["status"] == "complete" and 0 <= record["test_acc"] <= 100
    assert record["is_reproduction"] is False
    on_disk = json.loads(Path(record["record_path"]).read_text())
    assert on_disk == record
    for key in (
        "spec_hash",
        "recipe",
        "deviations",
        "budget",
        "data",
        "device",
        "versions",
        "git",
        "history",
        "wall_time_s",
        "device_hours",
        "data_source",
        "params",
        "macs",
    ):
        assert key in record, key
    assert record["budget"]["train_images"] == 64 and record["budget"]["is_full"] is False
    assert record["data"]["sha256"] and record["data"]["official"] is False
    assert any(d.startswith("budget 'smoke'") for d in record["deviations"])
    assert any("not the official CIFAR-10 pixels" in d for d in record["deviations"])
    assert record["versions"]["torch"] == torch.__version__
    assert len(record["history"]) == record["budget"]["epochs"]
    for entry in record["history"]:
        assert {"epoch", "phase", "lr", "train_loss", "train_acc_first_label", "val_acc"} <= set(entry)
    if spec.variant(variant).recipe.train.distill is not None:
        assert record["teacher"]["variant"] == "teacher" and Path(record["teacher"]["checkpoint"]).exists()
