"""CIFAR-10 for a run: its fixed facts, loading it (torchvision or a local copy, decoded once into a cached
uint8 array), the run's fixed splits, and its training batches.

Sources, in order: `--data PATH` or `HARNESS_DATA` (a torchvision CIFAR-10 folder, a folder of class
subfolders `train/<class>/*` and `test/<class>/*`, or a `.tar.gz` of one), else torchvision's download
into the cache. Every source is decoded once into `<cache>/data/<key>.npz`; later loads read that file.
Only the torchvision pickles (checked against their published MD5s) count as official CIFAR-10 pixels.

Batches: the batched path keeps the training images on the device as one uint8 tensor and augments whole
batches there (augment.Pipeline.batched); the torchvision path runs the exact per-sample transforms
through a DataLoader. Both draw from the generators `step.seed_epoch` makes, so an epoch replays exactly.
PyTorch is loaded on first use: specs read the facts above without it.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Protocol

import numpy as np

from harness.common.cache import cache_dir
from harness.common.errors import HarnessError
from harness.common.files import atomic_file
from harness.common.lazy import lazy
from harness.data.sources import damaged_text, member_bytes, outside_root, refused_text

if TYPE_CHECKING:
    from harness.common.device import Runtime
    from harness.data.augment import Pipeline
    from harness.spec import Recipe

torch = lazy("torch")  # loaded on first use: specs read CIFAR-10's facts without PyTorch

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SPLIT_SIZES = {"train": 50_000, "test": 10_000}
IMAGE_SIZE = 32
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp")


class DataError(HarnessError):
    """A data source that cannot be used; the message names the path and what was expected."""


class DataWarning(UserWarning):
    """Something about the data was repaired on the way (e.g. a damaged decode cache rebuilt)."""


@dataclass(frozen=True)
class Cifar10:
    """The whole dataset in memory: NHWC uint8 images and int64 labels, plus where it came from."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    source: str
    official: bool
    sha256: str

    @property
    def label(self) -> str:
        """How results on this data are labelled: never as official CIFAR-10 unless they are."""
        return "cifar10" if self.official else f"{self.source} (not the official CIFAR-10 pixels)"


def load_cifar10(path: str | Path | None = None) -> Cifar10:
    """The dataset from `path` (or HARNESS_DATA, or torchvision's download), via the decode cache."""
    path = path or os.environ.get("HARNESS_DATA")
    if path is None:
        return _torchvision(cache_dir() / "torchvision", download=True)
    source = Path(path).expanduser()
    if not source.exists():
        raise DataError(
            f"{source}: no such file or folder (expected CIFAR-10 as a torchvision folder, "
            "a folder of train/<class>/ and test/<class>/ images, or a .tar.gz of one)"
        )
    if source.is_dir() and (folder := _torchvision_folder(source)) is not None:
        return _torchvision(folder, download=False)
    if source.is_dir() and not (source / "train").is_dir():
        archives = sorted(p for p in source.iterdir() if p.name.endswith((".tar.gz", ".tgz", ".tar")))
        if archives:
            raise DataError(
                f"{source}: a folder without train/ and test/ images; it holds the archive {archives[0].name}: "
                f"pass --data {archives[0]}"
            )
    if source.is_file() and not tarfile.is_tarfile(source):
        raise DataError(f"{source}: not a tar archive (expected a .tar.gz of train/<class>/ and test/<class>/ images)")
    key = _quick_key(source)
    cached = cache_dir() / "data" / f"{key}.npz"
    if cached.exists():
        try:
            return _read_cache(cached)
        except Exception as error:  # noqa: BLE001 - any damage (truncated zip, bad arrays) means: rebuild
            warnings.warn(
                f"{cached}: damaged decode cache ({type(error).__name__}); decoding {source} again", DataWarning
            )
            cached.unlink(missing_ok=True)
    data = _decode_archive(source) if source.is_file() else _decode_folder(source)
    _write_cache(cached, data)
    return data


def _torchvision_folder(path: Path) -> Path | None:
    """The root torchvision expects (the folder holding cifar-10-batches-py), if `path` is one."""
    if (path / "cifar-10-batches-py").is_dir():
        return path
    if path.name == "cifar-10-batches-py":  # even with files missing: torchvision_damage names them
        return path.parent
    return None


def _torchvision(root: Path, download: bool) -> Cifar10:
    from torchvision.datasets import CIFAR10

    try:
        train = CIFAR10(str(root), train=True, download=download)
        test = CIFAR10(str(root), train=False, download=False)
    except RuntimeError:  # torchvision: missing or corrupt files ("You can use download=True", even when it is)
        raise DataError(damaged_text(root / "cifar-10-batches-py", download)) from None
    except OSError as error:  # no network for the download
        raise DataError(
            f"CIFAR-10 download into {root} failed ({error}); pass --data PATH or set HARNESS_DATA to a local copy"
        ) from None
    digest = hashlib.sha256()
    for name in sorted(p.name for p in (root / "cifar-10-batches-py").iterdir() if "batch" in p.name):
        digest.update((root / "cifar-10-batches-py" / name).read_bytes())
    return Cifar10(
        np.ascontiguousarray(train.data),
        np.asarray(train.targets, dtype=np.int64),
        np.ascontiguousarray(test.data),
        np.asarray(test.targets, dtype=np.int64),
        source="cifar10 (torchvision, MD5-checked)",
        official=True,
        sha256=digest.hexdigest(),
    )


def _quick_key(source: Path) -> str:
    """A cheap fingerprint (paths, sizes, mtimes) that finds the decode cache without reading images."""
    digest = hashlib.sha256(str(source.resolve()).encode())
    if source.is_file():
        stat = source.stat()
        digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
    else:
        for root, _, files in sorted(os.walk(source)):
            for name in sorted(files):
                stat = os.stat(os.path.join(root, name))
                digest.update(
                    f"{os.path.relpath(os.path.join(root, name), source)}:{stat.st_size}:{stat.st_mtime_ns}".encode()
                )
    return digest.hexdigest()[:24]


def _split_class(parts: tuple[str, ...]) -> tuple[str, str] | None:
    """(split, class) from a member path like [top/]train/cat/0001.jpg, or None for other files."""
    for i in range(len(parts) - 2):
        if parts[i] in SPLIT_SIZES and len(parts) == i + 3:
            return parts[i], parts[i + 1]
    return None


def _decode(items: list[tuple[str, str, str, bytes]], source: Path, sha256: str) -> Cifar10:
    """Decode (split, class, name, bytes) images into arrays; the layout is checked first."""
    from PIL import Image, UnidentifiedImageError

    by_split: dict[str, list[tuple[str, str, bytes]]] = {"train": [], "test": []}
    for split, cls, name, blob in items:
        by_split[split].append((cls, name, blob))
    for split, entries in by_split.items():
        found = {cls for cls, _, _ in entries}
        if not entries:
            raise DataError(
                f"{source}: no {split}/<class>/ images (expected train/ and test/ folders with one "
                f"subfolder per class: {', '.join(CLASSES)})"
            )
        missing = [c for c in CLASSES if c not in found]
        if missing:
            raise DataError(f"{source}: {split}/ lacks class folders {', '.join(missing)}")
        unknown = sorted(found - set(CLASSES))
        if unknown:
            raise DataError(f"{source}: {split}/ has folders that are not CIFAR-10 classes: {', '.join(unknown)}")
    arrays = {}
    for split, entries in by_split.items():
        entries.sort(key=lambda e: (CLASSES.index(e[0]), e[1]))
        images = np.empty((len(entries), 32, 32, 3), dtype=np.uint8)
        for i, (cls, name, blob) in enumerate(entries):
            try:
                with Image.open(io.BytesIO(blob)) as image:
                    pixels = np.asarray(image.convert("RGB"))
            except (UnidentifiedImageError, OSError) as error:
                raise DataError(f"{source}: {split}/{cls}/{name} is not a readable image ({error})") from None
            if pixels.shape != (32, 32, 3):
                raise DataError(
                    f"{source}: {split}/{cls}/{name} is {pixels.shape[1]}x{pixels.shape[0]}, expected 32x32"
                )
            images[i] = pixels
        arrays[split] = (images, np.array([CLASSES.index(e[0]) for e in entries], dtype=np.int64))
    jpeg = all(name.lower().endswith((".jpg", ".jpeg")) for _, _, name, _ in items)
    label = f"{source.name} ({'JPEG ' if jpeg else ''}image folders)"
    return Cifar10(*arrays["train"], *arrays["test"], source=label, official=False, sha256=sha256)


def _decode_archive(source: Path) -> Cifar10:
    digest = hashlib.sha256()
    with open(source, "rb") as raw:
        for block in iter(lambda: raw.read(1 << 20), b""):
            digest.update(block)
    items, refused = [], []
    try:
        with tarfile.open(source, "r:*") as archive:
            for member in archive:
                if not (member.isfile() or member.islnk() or member.issym()):
                    continue
                if outside_root(member):  # `../../train/cat/x.jpg` would otherwise read as a training image
                    refused.append(member.name)
                    continue
                parts = PurePosixPath(member.name).parts
                where = _split_class(parts)
                if where is None or not parts[-1].lower().endswith(IMAGE_SUFFIXES):
                    continue
                blob = member_bytes(archive, member)  # read into memory only: nothing is written to disk
                if blob is None:
                    refused.append(member.name)  # a link to nothing in the archive
                    continue
                items.append((*where, parts[-1], blob))
    except (tarfile.TarError, EOFError, OSError, ValueError) as error:
        raise DataError(f"{source}: damaged or truncated archive ({error})") from None
    if refused:
        warnings.warn(refused_text(source, refused), DataWarning)
    return _decode(items, source, digest.hexdigest())


def _decode_folder(source: Path) -> Cifar10:
    digest = hashlib.sha256()
    items = []
    for path in sorted(source.rglob("*")):
        if not path.is_file() or not path.name.lower().endswith(IMAGE_SUFFIXES):
            continue
        where = _split_class(path.relative_to(source).parts)
        if where is None:
            continue
        blob = path.read_bytes()
        digest.update(str(path.relative_to(source)).encode())
        digest.update(hashlib.sha256(blob).digest())
        items.append((*where, path.name, blob))
    return _decode(items, source, digest.hexdigest())


def _write_cache(path: Path, data: Cifar10) -> None:
    """The decoded arrays, written whole or not at all (and a killed decode's temporary file removed)."""
    arrays = {"train_x": data.train_x, "train_y": data.train_y, "test_x": data.test_x, "test_y": data.test_y}
    with atomic_file(path, needed=sum(a.nbytes for a in arrays.values())) as sink:  # streamed: no copy in memory
        np.savez(sink, **arrays, meta=np.array([data.source, str(data.official), data.sha256]))


def _read_cache(path: Path) -> Cifar10:
    with np.load(path, allow_pickle=False) as stored:
        source, official, sha256 = (str(v) for v in stored["meta"])
        data = Cifar10(
            stored["train_x"],
            stored["train_y"],
            stored["test_x"],
            stored["test_y"],
            source=source,
            official=official == "True",
            sha256=sha256,
        )
    for images, labels in ((data.train_x, data.train_y), (data.test_x, data.test_y)):
        if images.dtype != np.uint8 or images.shape[1:] != (32, 32, 3) or len(images) != len(labels):
            raise ValueError(f"arrays of shape {images.shape} and {labels.shape}")
        if len(labels) and not (0 <= labels.min() and labels.max() < len(CLASSES)):
            raise ValueError("labels outside the 10 classes")
    return data


def split_indices(n: int, val_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A fixed train/validation split of n training images (the same for every run with this seed)."""
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[val_size:]), np.sort(order[:val_size])


class AugmentedImages:  # a map-style dataset: DataLoader needs only __len__ and __getitem__
    """Per-sample pipeline over uint8 NHWC images: the exact torchvision transforms of a spec."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: torch.nn.Module) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = torch.from_numpy(self.images[index]).permute(2, 0, 1)
        return self.transform(image), int(self.labels[index])


Batches = Iterator[tuple["torch.Tensor", "torch.Tensor"]]
TEST_SUBSET_SEED = 2  # offset from the spec's val_seed; `harness eval --subset` uses it with val_seed 0


@dataclass(frozen=True)
class Splits:
    """Indices of the training, validation and test images of a run."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def subset_of(index: np.ndarray, count: int, seed: int) -> np.ndarray:
    """A fixed random subset, sorted (a random one because the arrays are ordered by class)."""
    return np.sort(np.random.default_rng(seed).permutation(index)[:count])


class ImageCounts(Protocol):
    """How many training, validation and test images a run uses (None: all of them); a budget is one."""

    train_images: int | None
    val_images: int | None
    test_images: int | None


def make_splits(data: Cifar10, recipe: Recipe, budget: ImageCounts) -> Splits:
    """The fixed validation split, then the budget's subsets (the same images for every seed)."""
    train, val = split_indices(len(data.train_x), recipe.data.val_size, recipe.data.val_seed)
    if budget.train_images is not None:
        train = subset_of(train, budget.train_images, recipe.data.val_seed + 1)
    if budget.val_images is not None:
        val = subset_of(val, budget.val_images, recipe.data.val_seed + 3)
    test = np.arange(len(data.test_x))
    if budget.test_images is not None:
        test = subset_of(test, budget.test_images, recipe.data.val_seed + TEST_SUBSET_SEED)
    return Splits(train, val, test)


def on_device(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 NHWC arrays -> a uint8 NCHW tensor on the device."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous().to(device)


class TrainingImages:
    """The training images and their augmentation, on the batched or the torchvision path."""

    def __init__(
        self, images: np.ndarray, labels: np.ndarray, pipeline: Pipeline, kind: str, runtime: Runtime, workers: int = 0
    ) -> None:
        self.kind, self.runtime, self.pipeline = kind, runtime, pipeline
        self.workers = workers  # DataLoader workers, on the torchvision path
        if kind == "batched":
            self.images = on_device(images, runtime.device)
            self.labels = torch.from_numpy(labels).to(runtime.device)
        else:
            self.dataset = AugmentedImages(images, labels, pipeline.per_sample())

    def batches(self, batch_size: int, gen: torch.Generator, aug_gen: torch.Generator) -> Batches:
        """One epoch in a random order (all images, the last batch possibly short, as DataLoader)."""
        device = self.runtime.device
        if self.kind == "batched":
            order = torch.randperm(len(self.images), generator=gen).to(device, non_blocking=True)
            for start in range(0, len(order), batch_size):
                index = order[start : start + batch_size]
                yield self.pipeline.batched(self.images[index], aug_gen), self.labels[index]
            return
        loader = torch.utils.data.DataLoader(
            self.dataset,
            batch_size=batch_size,
            shuffle=True,
            generator=gen,
            num_workers=self.workers,
            pin_memory=self.runtime.pin_memory,
        )
        for x, y in loader:
            yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)

    def augmented(self, images: np.ndarray, labels: np.ndarray, batch_size: int, seed: int) -> Batches:
        """Images through the training transform in a fixed order, seeded (report 002's augmented validation)."""
        device = self.runtime.device
        if self.kind == "batched":
            gen = torch.Generator(device=device).manual_seed(seed)
            for start in range(0, len(images), batch_size):
                x = on_device(images[start : start + batch_size], device)
                yield self.pipeline.batched(x, gen), torch.from_numpy(labels[start : start + batch_size]).to(device)
            return
        loader = torch.utils.data.DataLoader(
            AugmentedImages(images, labels, self.dataset.transform), batch_size=batch_size, num_workers=self.workers
        )
        with torch.random.fork_rng(devices=[]):  # the global CPU generator, restored afterwards
            torch.manual_seed(seed)
            for x, y in loader:
                yield x.to(device), y.to(device)
