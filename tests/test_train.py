"""Training end to end on the real JPEG archive: it learns, resumes exactly, and records everything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from harness.common.errors import RunError
from harness.common.events import Silent
from harness.spec import load_spec
from harness.train import checkpoint
from harness.train.loop import run
from harness.train.request import RunOptions
from tests.conftest import SPECS_DIR, resnet12_grid_text

RESNET10 = SPECS_DIR / "resnet10.toml"


class Heard(Silent):
    """Events that keep every message."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def message(self, text: str) -> None:
        self.messages.append(text)


class StopAfter(Silent):
    """Events that kill the run (as a KeyboardInterrupt would) once `epochs` epochs are stored."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def message(self, text: str) -> None:
        if text.startswith(f"epoch {self.epochs}/"):
            raise KeyboardInterrupt


def test_a_smoke_run_learns_well_above_chance(jpeg_archive: Path, tmp_path: Path, spec_copy) -> None:
    # report 003's ResNet-12 recipe in batches of 64 (its own are 256): 96 steps on 2,048 images learn as much as
    # its 48 steps on 4,096, at half the compute (seeds 0-2: 29.8-30.8% test, 29.1-31.8% validation; 26-31 s on
    # one idle core)
    spec = load_spec(spec_copy(resnet12_grid_text(extra="train.batch_size = 64")))
    options = RunOptions(profile="smoke", epochs=3, subset=2048, data=str(jpeg_archive), device="cpu")
    record = run(spec, "resnet12-grid", options, tmp_path, Silent())
    assert record.status == "complete" and record.recipe["train"]["batch_size"] == 64
    assert record.test_acc > 25.0  # chance is 10%
    assert record.history[-1]["val_acc"] > 25.0
    assert record.history[0]["train_loss"] > record.history[-1]["train_loss"]


def _without_timing(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in h.items() if k not in ("seconds", "train_images_per_s")} for h in history]


def test_a_killed_run_resumes_to_the_same_result(jpeg_archive: Path, narrow_dmsresnet: Path, tmp_path: Path) -> None:
    spec = load_spec(narrow_dmsresnet)  # Lookahead, clipping, mixup, dropout and SE all in play
    options = RunOptions(profile="smoke", epochs=3, subset=64, data=str(jpeg_archive), device="cpu", deterministic=True)
    whole = run(spec, "se-mixup", options, tmp_path / "a", Silent())
    with pytest.raises(KeyboardInterrupt):
        run(spec, "se-mixup", options, tmp_path / "b", StopAfter(2))
    with pytest.raises(RunError, match="pass --resume to continue it"):
        run(spec, "se-mixup", options, tmp_path / "b", Silent())
    heard = Heard()
    resumed = run(spec, "se-mixup", RunOptions(**{**options.__dict__, "resume": True}), tmp_path / "b", heard)
    assert any(m.startswith("estimate: 1 epoch x ") for m in heard.messages), heard.messages  # the one left
    assert resumed.test_acc == whole.test_acc
    assert _without_timing(resumed.history) == _without_timing(whole.history)
    final_a = checkpoint.load_file(Path(whole.checkpoint_dir) / "final.pt")["model"]
    final_b = checkpoint.load_file(Path(resumed.checkpoint_dir) / "final.pt")["model"]
    assert all(torch.equal(final_a[k], final_b[k]) for k in final_a)


def test_a_finished_run_is_not_repeated(jpeg_archive: Path, smoke_runs: Path) -> None:
    options = RunOptions(profile="smoke", subset=64, data=str(jpeg_archive), device="cpu")
    first = run(load_spec(RESNET10), "resnet12-grid", options, smoke_runs, Silent())  # trained here or before
    messages: list[str] = []

    class Record(Silent):
        def message(self, text: str) -> None:
            messages.append(text)

    again = run(load_spec(RESNET10), "resnet12-grid", options, smoke_runs, Record())
    assert again == first and messages and "already complete" in messages[0]


class ScriptedValidation:
    """Validation accuracies from a script, to make ties at will (monkeypatched over the real one)."""

    def __init__(self, accuracies: list[float]) -> None:
        self.accuracies, self.calls = accuracies, 0

    def __call__(self, *_: object) -> float:
        self.calls += 1
        return self.accuracies[self.calls - 1]


def test_best_val_takes_the_later_of_tied_epochs_and_survives_a_resume(
    jpeg_archive: Path, tmp_path: Path, monkeypatch
) -> None:
    # report 003's loop keeps a checkpoint when validation accuracy is >= the best so far: of two tied epochs the
    # later wins. Epochs 2 and 3 (counted from 1, as records count) tie at 60%: the selected model is epoch 3's,
    # also after a resume.
    from harness.train import loop as train

    spec = load_spec(RESNET10)  # resnet12-grid selects the best validation epoch
    options = RunOptions(profile="smoke", epochs=4, subset=64, data=str(jpeg_archive), device="cpu", deterministic=True)
    monkeypatch.setattr(train, "validation_accuracy", ScriptedValidation([50.0, 60.0, 60.0, 55.0]))
    whole = run(spec, "resnet12-grid", options, tmp_path / "a", Silent())
    assert (whole.selected_epoch, whole.val_acc, whole.test_acc_by_rule["best-val-epoch"]) == (3, 60.0, 3)
    assert whole.test_acc == whole.test_acc_by_rule["best-val"]

    monkeypatch.setattr(train, "validation_accuracy", ScriptedValidation([50.0, 60.0, 60.0]))
    with pytest.raises(KeyboardInterrupt):
        run(spec, "resnet12-grid", options, tmp_path / "b", StopAfter(3))
    monkeypatch.setattr(train, "validation_accuracy", ScriptedValidation([55.0]))  # only epoch 3 is left
    resumed = run(spec, "resnet12-grid", RunOptions(**{**options.__dict__, "resume": True}), tmp_path / "b", Silent())
    assert (resumed.selected_epoch, resumed.test_acc_by_rule) == (3, whole.test_acc_by_rule)


def test_the_common_protocol_end_to_end(jpeg_archive: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    # --protocol common trains the variant's network with reproductions/common.toml's recipe; the table
    # shows it in the common column, never as the report's own.
    from harness.cli import main
    from harness.spec import load_protocol, with_protocol
    from tests.conftest import COMMON, REPO

    spec = load_spec(RESNET10)
    options = RunOptions(profile="smoke", subset=64, data=str(jpeg_archive), device="cpu", protocol="common")
    record = run(spec, "resnet12-grid", options, tmp_path, Silent())
    common = with_protocol(spec, spec.variant("resnet12-grid"), load_protocol(COMMON))
    assert (
        record.protocol == "common" and record.spec_hash == common.spec_hash != spec.variant("resnet12-grid").spec_hash
    )
    assert record.recipe["model"] == spec.variant("resnet12-grid").recipe.model.model_dump(mode="json")
    assert record.recipe["train"]["optimizer"] == common.recipe.train.optimizer.model_dump(mode="json")
    assert record.is_reproduction is False and Path(record.record_path).name.startswith("common-smoke-")
    monkeypatch.chdir(REPO)
    assert main(["table", "--results", str(tmp_path), "--format", "json", "--no-latency"]) == 0
    rows = {(r["report"], r["variant"]): r for r in json.loads(capsys.readouterr().out)}
    row = rows[("resnet10", "resnet12-grid")]
    assert (row["common_n_seeds"], row["n_seeds"], row["verdict"]) == (1, 0, "not run")
    assert row["common_test_acc_mean"] == pytest.approx(record.test_acc)
