"""Checkpoints: atomic, verified by hash, the previous one used when the newest is damaged."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from harness.common import files
from harness.train import checkpoint


def state(value: float) -> dict:
    return checkpoint.TrainState(
        identity={"seed": 0},
        epoch=int(value),
        model={"w": torch.full((3,), value)},
        optimizer={},
        scheduler={},
        history=[{"loss": value}],
        best=None,
        wall_time_s=value,
        model_card={},
    ).to_dict()


def test_save_keeps_the_newest_two_and_loads_the_newest(tmp_path: Path) -> None:
    for epoch in range(4):
        checkpoint.save(tmp_path, epoch, state(epoch))
    assert sorted(p.name for p in tmp_path.glob("*.pt")) == ["epoch-0002.pt", "epoch-0003.pt"]
    loaded, rejected = checkpoint.load_state(tmp_path)
    assert loaded.epoch == 3 and rejected == [] and torch.equal(loaded.model["w"], torch.full((3,), 3.0))
    assert not list(tmp_path.glob("*.tmp"))


def test_a_checkpoint_missing_what_resume_reads_is_rejected(tmp_path: Path) -> None:
    checkpoint.save(tmp_path, 0, state(0))
    partial = {k: v for k, v in state(1).items() if k != "optimizer"}
    checkpoint.save(tmp_path, 1, partial)
    loaded, rejected = checkpoint.load_state(tmp_path)
    assert loaded.epoch == 0 and len(rejected) == 1 and "no optimizer" in rejected[0]


@pytest.mark.parametrize("damage", ["truncate", "flip", "sidecar"])
def test_damaged_newest_falls_back_to_the_previous(tmp_path: Path, damage: str) -> None:
    checkpoint.save(tmp_path, 0, state(0))
    newest = checkpoint.save(tmp_path, 1, state(1))
    data = newest.read_bytes()
    if damage == "truncate":
        newest.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        newest.write_bytes(data[:-10] + bytes(b ^ 0xFF for b in data[-10:]))
    else:
        newest.with_name(newest.name + ".sha256").unlink()
    loaded, rejected = checkpoint.load_state(tmp_path)
    assert loaded.epoch == 0
    assert len(rejected) == 1 and "epoch-0001.pt" in rejected[0]


def test_no_usable_checkpoint(tmp_path: Path) -> None:
    path = checkpoint.save(tmp_path, 0, state(0))
    path.write_bytes(b"garbage")
    with pytest.raises(checkpoint.CheckpointError, match="no usable checkpoint to resume from"):
        checkpoint.load_state(tmp_path)


def test_loading_refuses_code(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"x": Evil()}, path)
    with pytest.raises(checkpoint.CheckpointError, match="unreadable"):
        checkpoint.load_file(path, verify=False)


def test_atomic_json(tmp_path: Path) -> None:
    target = tmp_path / "a" / "r.json"
    files.atomic_write_json(target, {"x": 1})
    files.atomic_write_json(target, {"x": 2})
    assert target.read_text().strip().endswith("}") and '"x": 2' in target.read_text()
    assert [p.name for p in target.parent.iterdir()] == ["r.json"]
