"""Hostile data (issue 27): a 0-byte CIFAR-10-C array, archive members outside the archive's root, a damaged
torchvision folder and HARNESS_CACHE naming a file each get one line that names the file and what to do."""

from __future__ import annotations

import io
import tarfile
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main
from harness.common.errors import HarnessError
from harness.data import cifar10 as data_module
from harness.data.cifar10 import CLASSES, DataError, DataWarning, load_cifar10
from tests.conftest import REPO
from tests.test_cifar10c import _miniature, saved  # noqa: F401 - `saved` is a fixture
from tests.test_data import _png, make_folder


def test_a_zero_byte_cifar10c_array_is_one_line(saved, tmp_path: Path, capsys) -> None:  # noqa: F811
    """A 0-byte .npy ended in `EOFError: No data left in file` (an internal error)."""
    final, images, predictions = saved
    _miniature(tmp_path / "c10c", images, predictions)
    (tmp_path / "c10c" / "contrast.npy").write_bytes(b"")
    assert main(["eval", str(final), "--cifar10c", str(tmp_path / "c10c"), "--no-corruptions"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"harness: error: {tmp_path / 'c10c' / 'contrast.npy'}: "), err
    assert "empty" in err[0] and "download" in err[0] and "internal" not in err[0]


def test_cifar10c_evaluation_warns_of_nothing(saved, tmp_path: Path, jpeg_archive: Path, capsys) -> None:  # noqa: F811
    """PyTorch's "non-writable tensor" UserWarning was printed on every CIFAR-10-C evaluation."""
    final, images, predictions = saved
    _miniature(tmp_path / "c10c", images, predictions)
    argv = ["eval", str(final), "--data", str(jpeg_archive), "--subset", "16", "--no-corruptions", "--device", "cpu"]
    with warnings.catch_warnings():
        warnings.simplefilter("always")  # a warning PyTorch gives once per process must show here too
        assert main([*argv, "--cifar10c", str(tmp_path / "c10c"), "--json"]) == 0
    assert "warning" not in capsys.readouterr().err


def _archive(path: Path, extra: list[tarfile.TarInfo | tuple[str, bytes]]) -> Path:
    """An archive of one image per class and split under `top/`, and the `extra` members after them."""
    with tarfile.open(path, "w:gz") as tar:
        for split in ("train", "test"):
            for i, cls in enumerate(CLASSES):
                blob = _png(10 * i)
                info = tarfile.TarInfo(f"top/{split}/{cls}/0.png")
                info.size = len(blob)
                tar.addfile(info, io.BytesIO(blob))
        for member in extra:
            if isinstance(member, tarfile.TarInfo):
                tar.addfile(member)
            else:
                info = tarfile.TarInfo(member[0])
                info.size = len(member[1])
                tar.addfile(info, io.BytesIO(member[1]))
    return path


def _link(name: str, target: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


def test_archive_members_outside_its_root_are_refused(tmp_path: Path, monkeypatch) -> None:
    """A member named `../../train/cat/x.jpg` was read as a training image (801 images instead of 800)."""
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    evil = [
        ("../../train/cat/x.png", _png(200)),
        ("/train/dog/y.png", _png(201)),
        ("top/train/../train/cat/z.png", _png(202)),
        _link("top/train/bird/link.png", "../../../../etc/passwd", tarfile.SYMTYPE),
        _link("top/train/frog/hard.png", "../outside.png", tarfile.LNKTYPE),
    ]
    archive = _archive(tmp_path / "evil.tar.gz", evil)
    with pytest.warns(DataWarning) as caught:
        data = load_cifar10(archive)
    assert len(data.train_x) == 10 and len(data.test_x) == 10
    assert not np.isin(data.train_x[:, 0, 0, 0], [200, 201, 202]).any()
    assert len(caught) == 1, "one warning per archive"
    text = str(caught[0].message)
    for name in ("../../train/cat/x.png", "/train/dog/y.png", "top/train/../train/cat/z.png"):
        assert name in text
    assert "top/train/bird/link.png" in text and "top/train/frog/hard.png" in text


def test_a_link_inside_the_archive_root_still_reads(tmp_path: Path, monkeypatch) -> None:
    """A hard link to another member (how tar stores a duplicate file) is an image like any other."""
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    archive = _archive(
        tmp_path / "linked.tar.gz", [_link("top/train/cat/1.png", "top/train/cat/0.png", tarfile.LNKTYPE)]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = load_cifar10(archive)
    assert len(data.train_x) == 11


def test_a_damaged_torchvision_folder_names_its_file(tmp_path: Path, monkeypatch) -> None:
    """A damaged cifar-10-batches-py repeated torchvision's "You can use download=True"."""
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    batches = tmp_path / "tv" / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    for name in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "test_batch", "batches.meta"):
        (batches / name).write_bytes(b"truncated")
    with pytest.raises(DataError) as raised:
        load_cifar10(tmp_path / "tv")
    message = str(raised.value)
    assert "download=True" not in message and "\n" not in message
    assert message.startswith(f"{batches}: missing: data_batch_5; damaged (truncated or altered): data_batch_1, ")
    assert f"delete {batches}" in message and "--data" in message


def test_harness_cache_naming_a_file_is_refused_before_decoding(tmp_path: Path, monkeypatch, capsys) -> None:
    """HARNESS_CACHE naming a file said "Not a directory" after an 18 s decode, without naming the variable."""
    cache = tmp_path / "cache-file"
    cache.write_text("not a folder")
    monkeypatch.setenv("HARNESS_CACHE", str(cache))

    def fail(*_: object) -> None:
        raise AssertionError("decoded before checking HARNESS_CACHE")

    monkeypatch.setattr(data_module, "_decode_folder", fail)
    expected = f"HARNESS_CACHE={cache} is a file, not a folder: point it at a folder (or unset it)"
    with pytest.raises(HarnessError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        load_cifar10(make_folder(tmp_path / "imgs", per_class=1))
    started = time.perf_counter()
    monkeypatch.chdir(REPO)
    argv = ["run", "reproductions/resnet10.toml", "--profile", "smoke", "--device", "cpu"]
    argv += ["--data", str(tmp_path / "imgs"), "--results", str(tmp_path / "results")]
    assert main(argv) == 2 and time.perf_counter() - started < 60
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"harness: error: {expected}"
