"""A disk that fills: every file a person may read later is written whole or not at all, the failure is one
line naming the file, the space it needed and the space there was, and no temporary file is left behind
(nor one a killed process left: a run's start removes those of its own folder).

The full disk is simulated: under one folder each file may hold only `room` bytes. A write past that
writes what fits and then fails with ENOSPC (as write(2) does), and an fsync of a file past it fails with
ENOSPC too (as it does where space is allocated late: NFS, quotas, delayed allocation). Only files under
that folder are touched; everything else the process writes goes to disk as usual.
"""

from __future__ import annotations

import errno
import json
import os
import re
import resource
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from harness.cli import main
from harness.common import files
from harness.common.errors import HarnessError
from harness.data import cifar10
from harness.train import checkpoint
from tests.conftest import REPO, SPECS_DIR

ONE_LINE_NEEDS_AND_FREE = re.compile(r"^[^\n]*needs [\d.]+ [kMG]?B[^\n]*[\d.]+ [kMGT]?B free[^\n]*$")


class FullDisk:
    """Files under `folder` hold at most `room` bytes (None: no limit yet)."""

    def __init__(self, folder: Path) -> None:
        self.folder = os.path.realpath(folder)
        self.room: int | None = None

    def full(self, fd: int) -> bool:
        try:
            where = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return False
        return self.room is not None and where.startswith(self.folder + os.sep)


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FullDisk:
    disk = FullDisk(tmp_path / "full")
    real_write, real_fsync = os.write, os.fsync

    def write(fd: int, data) -> int:
        if not disk.full(fd):
            return real_write(fd, data)
        left = disk.room - os.lseek(fd, 0, os.SEEK_CUR)
        if left <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, bytes(memoryview(data)[:left]))

    def fsync(fd: int) -> None:
        if disk.full(fd) and os.fstat(fd).st_size > disk.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(os, "write", write)
    monkeypatch.setattr(os, "fsync", fsync)
    (tmp_path / "full").mkdir()
    return disk


def _temporaries(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.name.endswith(".tmp"))


@pytest.mark.parametrize("writer", ["bytes", "json", "text"])
def test_a_write_on_a_full_disk_keeps_the_old_file_leaves_no_temporary_and_says_how_much(
    full_disk: FullDisk, tmp_path: Path, writer: str
) -> None:
    target = tmp_path / "full" / "record.json"
    target.write_text("old")
    full_disk.room = 4096
    payload = {"x": "y" * 1_000_000}
    with pytest.raises(HarnessError) as caught:
        if writer == "bytes":
            files.atomic_write_bytes(target, json.dumps(payload).encode())
        elif writer == "json":
            files.atomic_write_json(target, payload)
        else:
            files.atomic_write_text(target, json.dumps(payload))
    message = str(caught.value)
    assert str(target) in message and "No space left on device" in message
    assert ONE_LINE_NEEDS_AND_FREE.match(message) and "needs 1.0 MB" in message, message
    assert target.read_text() == "old"
    assert _temporaries(tmp_path) == []


def test_written_files_get_the_folders_usual_mode_not_a_private_one(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        files.atomic_write_bytes(tmp_path / "r.json", b"{}")
    finally:
        os.umask(old)
    assert oct((tmp_path / "r.json").stat().st_mode & 0o777) == oct(0o644)  # a study or record others may read


def _state(epoch: int) -> dict:
    return checkpoint.TrainState(
        identity={"seed": 0},
        epoch=epoch,
        model={"w": torch.full((50_000,), float(epoch))},  # 200 kB
        optimizer={},
        scheduler={},
        history=[],
        best=None,
        wall_time_s=0.0,
        model_card={},
    ).to_dict()


def test_a_checkpoint_on_a_full_disk_fails_in_one_line_and_the_previous_one_is_still_used(
    full_disk: FullDisk, tmp_path: Path
) -> None:
    folder = tmp_path / "full" / "checkpoints" / "run"
    checkpoint.save(folder, 0, _state(0))
    full_disk.room = 64 * 1024
    with pytest.raises(HarnessError) as caught:
        checkpoint.save(folder, 1, _state(1))
    assert "epoch-0001.pt" in str(caught.value) and ONE_LINE_NEEDS_AND_FREE.match(str(caught.value))
    assert sorted(p.name for p in folder.iterdir()) == ["epoch-0000.pt", "epoch-0000.pt.sha256"]
    loaded, rejected = checkpoint.load_state(folder)
    assert loaded.epoch == 0 and rejected == []


KILLED_WRITER = """
import os, signal, sys
from pathlib import Path
import torch
from harness.train import checkpoint

def die(fd):  # the data is in the temporary file; the rename never comes
    os.kill(os.getpid(), signal.SIGKILL)

os.fsync = die
checkpoint.save(Path(sys.argv[1]), 3, {"w": torch.zeros(1000)})
"""


def test_a_temporary_left_by_a_killed_write_is_removed_when_the_run_starts_again(tmp_path: Path) -> None:
    folder = tmp_path / "results" / "checkpoints" / "r" / "v" / "run"
    folder.mkdir(parents=True)
    other = tmp_path / "results" / "checkpoints" / "r" / "v" / "another-run"
    other.mkdir()
    (other / ".epoch-0000.pt.0123abcd.tmp").write_bytes(b"x")  # another run's: not ours to judge
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, str(folder)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    left = _temporaries(folder)
    assert left, "the killed write left no temporary file: the simulation did not stop it mid-write"
    with checkpoint.run_lock(folder, tmp_path / "results"):
        assert _temporaries(folder) == []
    assert _temporaries(other) == [".epoch-0000.pt.0123abcd.tmp"]


def test_a_temporary_being_written_is_not_taken_for_a_stale_one(tmp_path: Path) -> None:
    target = tmp_path / "epoch-0000.pt"
    with files.atomic_file(target, needed=3) as sink:
        sink.write(b"abc")
        (live,) = _temporaries(tmp_path)
        assert files.remove_stale_temporaries(tmp_path) == []
        assert (tmp_path / live).exists()
    assert target.read_bytes() == b"abc" and _temporaries(tmp_path) == []


def test_the_next_write_of_a_file_removes_the_temporary_a_killed_write_of_it_left(tmp_path: Path) -> None:
    (tmp_path / ".r.json.0123abcd.tmp").write_bytes(b"{")  # a record's write, killed
    (tmp_path / ".s.json.0123abcd.tmp").write_bytes(b"{")  # another file's: left for its own next write
    files.atomic_write_json(tmp_path / "r.json", {"x": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == [".s.json.0123abcd.tmp", "r.json"]


def _image_folder(root: Path) -> Path:
    """A data source of 4 random 32x32 PNGs per class and split."""
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for cls in cifar10.CLASSES:
            (root / split / cls).mkdir(parents=True)
            for i in range(4):
                Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(root / split / cls / f"{i}.png")
    return root


def test_the_decode_cache_on_a_full_disk_fails_in_one_line_and_leaves_no_temporary(
    full_disk: FullDisk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _image_folder(tmp_path / "images")
    cache = tmp_path / "full" / "cache"
    monkeypatch.setenv("HARNESS_CACHE", str(cache))
    full_disk.room = 8 * 1024  # the decoded arrays take about 250 kB
    with pytest.raises(HarnessError) as caught:
        cifar10.load_cifar10(source)
    assert ".npz" in str(caught.value) and ONE_LINE_NEEDS_AND_FREE.match(str(caught.value)), caught.value
    assert _temporaries(cache) == [] and not list(cache.rglob("*.npz"))


def test_a_stale_decode_cache_temporary_is_removed_when_the_cache_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _image_folder(tmp_path / "images")
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    stale = tmp_path / "cache" / "data" / f".{cifar10._quick_key(source)}.npz.0123abcd.tmp"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"x" * 1000)  # what a killed decode leaves
    data = cifar10.load_cifar10(source)
    assert len(data.train_y) == 40 and _temporaries(tmp_path / "cache") == []
    assert len(cifar10.load_cifar10(source).train_y) == 40  # read back from the cache


def test_harness_plot_on_a_full_disk_fails_in_one_line_and_leaves_no_partial_png(
    full_disk: FullDisk, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "results").mkdir()
    out = tmp_path / "full" / "plots"
    full_disk.room = 16 * 1024  # each PNG takes about 300 kB
    assert main(["plot", "--results", str(tmp_path / "results"), "--out", str(out), "--no-latency"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("harness: error: ") and ".png" in err and ONE_LINE_NEEDS_AND_FREE.match(err), err
    assert not list(out.glob("*.png")) and _temporaries(out) == []


def _limit_file_size(limit: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # Python ignores SIGXFSZ: writes fail EFBIG

    return apply


@pytest.mark.parametrize(("limit", "fails"), [(100_000, ".png"), (500_000, "study.html")])
def test_harness_report_that_cannot_write_leaves_every_file_whole_or_absent(
    tmp_path: Path, limit: int, fails: str
) -> None:
    """A real write failure from the kernel (a file-size limit: PNGs take about 300 kB, the page 900 kB)."""
    (tmp_path / "results").mkdir()
    out = tmp_path / "studies"
    argv = [sys.executable, "-m", "harness.cli", "report", str(SPECS_DIR / "resnet10.toml"), "--no-latency"]
    done = subprocess.run(
        [*argv, "--results", str(tmp_path / "results"), "--out", str(out)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        preexec_fn=_limit_file_size(limit),
    )
    err = done.stderr.strip()
    assert done.returncode == 2 and err.startswith("harness: error: ") and "\n" not in err, err
    assert fails in err and ONE_LINE_NEEDS_AND_FREE.match(err), err
    assert _temporaries(out) == []
    for png in out.rglob("*.png"):
        with Image.open(png) as image:
            image.load()  # a PNG cut off mid-image does not load
    for page in out.rglob("study.html"):
        assert page.read_text().rstrip().endswith("</html>")
