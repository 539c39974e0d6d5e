"""Data sources: the real JPEG archive, image folders, the decode cache, and clear errors for bad input."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from harness.data import cifar10 as data_module
from harness.data.augment import Pipeline
from harness.data.cifar10 import CLASSES, DataError, load_cifar10, split_indices


def test_jpeg_archive_loads_labelled_as_not_official(jpeg_archive: Path) -> None:
    d = load_cifar10(jpeg_archive)
    assert d.train_x.shape == (50_000, 32, 32, 3) and d.test_x.shape == (10_000, 32, 32, 3)
    assert d.train_x.dtype == np.uint8
    assert np.bincount(d.train_y).tolist() == [5000] * 10 and np.bincount(d.test_y).tolist() == [1000] * 10
    assert not d.official and "not the official CIFAR-10 pixels" in d.label and "JPEG" in d.label
    mean = d.train_x.reshape(-1, 3).mean(0) / 255
    assert mean == pytest.approx([0.4913, 0.4821, 0.4465], abs=2e-4)  # ../shared/README.md


def test_second_load_reads_the_cache_without_decoding(jpeg_archive: Path, monkeypatch) -> None:
    first = load_cifar10(jpeg_archive)

    def fail(*_: object) -> None:
        raise AssertionError("decoded again instead of reading the cache")

    monkeypatch.setattr(data_module, "_decode_archive", fail)
    again = load_cifar10(jpeg_archive)
    assert again.sha256 == first.sha256 and np.array_equal(again.test_x, first.test_x)


def test_environment_variable_selects_the_source(jpeg_archive: Path, monkeypatch) -> None:
    monkeypatch.setenv("HARNESS_DATA", str(jpeg_archive))
    assert load_cifar10().sha256 == load_cifar10(jpeg_archive).sha256


def _png(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((32, 32, 3), value, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def make_folder(root: Path, classes=CLASSES, per_class: int = 2) -> Path:
    for split in ("train", "test"):
        for i, cls in enumerate(classes):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for k in range(per_class):
                (folder / f"{k}.png").write_bytes(_png(10 * i + k))
    return root


def test_image_folder_source(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    d = load_cifar10(make_folder(tmp_path / "imgs"))
    assert d.train_x.shape == (20, 32, 32, 3) and d.train_y.tolist() == sorted([i for i in range(10)] * 2)
    assert d.train_x[2, 0, 0, 0] == 10  # class 1 ("automobile"), first image
    assert not d.official and "(image folders)" in d.label


def test_tar_of_an_image_folder(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    folder = make_folder(tmp_path / "imgs")
    archive = tmp_path / "imgs.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="top")
    assert np.array_equal(load_cifar10(archive).test_x, load_cifar10(folder).test_x)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda root: root / "missing", "no such file or folder"),
        (lambda root: make_folder(root / "f", classes=CLASSES[:9]), "train/ lacks class folders truck"),
        (lambda root: make_folder(root / "f", classes=CLASSES + ("unicorn",)), "not CIFAR-10 classes: unicorn"),
        (lambda root: (root / "empty").mkdir() or root / "empty", "no train/<class>/ images"),
        (  # the folder that holds the archive: the error names the file to pass instead
            lambda root: (root / "d").mkdir() or (root / "d" / "c.tar.gz").write_bytes(b"") or root / "d",
            r"holds the archive c.tar.gz: pass --data .*/d/c.tar.gz",
        ),
    ],
)
def test_bad_sources(tmp_path: Path, monkeypatch, setup, message: str) -> None:
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DataError, match=message):
        load_cifar10(setup(tmp_path))


def test_unreadable_image_names_the_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    root = make_folder(tmp_path / "f")
    (root / "train" / "cat" / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(DataError, match=r"train/cat/bad.jpg is not a readable image"):
        load_cifar10(root)


def test_truncated_archive(tmp_path: Path, monkeypatch, jpeg_archive: Path) -> None:
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(jpeg_archive.read_bytes()[:2_000_000])
    with pytest.raises(DataError, match="damaged or truncated archive"):
        load_cifar10(cut)


def test_a_file_that_is_not_an_archive(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    (tmp_path / "x.tar.gz").write_text("hello")
    with pytest.raises(DataError, match="not a tar archive"):
        load_cifar10(tmp_path / "x.tar.gz")


def test_fake_torchvision_folder_is_rejected(tmp_path: Path) -> None:
    batches = tmp_path / "cifar-10-batches-py"
    batches.mkdir()
    for name in ("data_batch_1", "test_batch"):
        (batches / name).write_bytes(b"junk")
    with pytest.raises(DataError, match=str(tmp_path)):
        load_cifar10(tmp_path)


def test_split_is_fixed_and_disjoint() -> None:
    train, val = split_indices(50_000, 5000, seed=0)
    again, val_again = split_indices(50_000, 5000, seed=0)
    assert len(train) == 45_000 and len(val) == 5000 and not set(train) & set(val)
    assert np.array_equal(train, again) and np.array_equal(val, val_again)
    assert not np.array_equal(val, split_indices(50_000, 5000, seed=1)[1])


def test_the_test_transform_scales_then_normalises() -> None:
    # The test transform is the training pipeline with no ops: x / 255, then (x - mean) / std.
    images = torch.tensor([0, 51, 255], dtype=torch.uint8).view(1, 3, 1, 1).expand(2, 3, 32, 32)
    out = Pipeline((), (0.5, 0.5, 0.5), (0.25, 0.5, 1.0)).batched(images)
    assert out.shape == (2, 3, 32, 32) and out.dtype == torch.float32
    assert out[0, :, 0, 0].tolist() == pytest.approx([-2.0, -0.6, 0.5])


@pytest.mark.parametrize("damage", [b"", b"PK\x03\x04 truncated zip", b"\x00" * 4096])
def test_a_damaged_decode_cache_is_rebuilt_with_a_warning(tmp_path: Path, monkeypatch, damage: bytes) -> None:
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    source = make_folder(tmp_path / "images")
    first = load_cifar10(source)
    (cached,) = (tmp_path / "cache" / "data").glob("*.npz")
    cached.write_bytes(damage)
    with pytest.warns(data_module.DataWarning, match="damaged decode cache"):
        again = load_cifar10(source)
    assert again.sha256 == first.sha256 and np.array_equal(again.train_x, first.train_x)
    assert load_cifar10(source).sha256 == first.sha256  # the rebuilt cache reads back


def test_a_cache_with_wrong_arrays_is_not_trusted(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    source = make_folder(tmp_path / "images")
    first = load_cifar10(source)
    (cached,) = (tmp_path / "cache" / "data").glob("*.npz")
    np.savez(
        cached,
        train_x=np.zeros((3, 8, 8), np.uint8),
        train_y=np.zeros(3, np.int64),
        test_x=first.test_x,
        test_y=first.test_y,
        meta=np.array([first.source, "False", first.sha256]),
    )
    with pytest.warns(data_module.DataWarning):
        assert load_cifar10(source).train_x.shape == first.train_x.shape


def test_the_cli_says_the_cache_was_rebuilt_in_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    from harness.cli import main

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    source = make_folder(tmp_path / "images", per_class=1)
    load_cifar10(source)
    (cached,) = (tmp_path / "cache" / "data").glob("*.npz")
    cached.write_bytes(b"garbage")
    spec = str(Path(__file__).resolve().parents[1] / "reproductions" / "resnet10.toml")
    # 10 training images cannot hold the validation split: refused in one line, after the warning
    code = main(["run", spec, "--profile", "smoke", "--data", str(source), "--results", str(tmp_path / "r")])
    err = capsys.readouterr().err.splitlines()
    assert code == 2 and len(err) == 2 and not (tmp_path / "r").exists()
    assert err[0].startswith("harness: warning: ") and "damaged decode cache" in err[0]
    assert err[1].startswith("harness: error: ") and "has 10 training images" in err[1]
