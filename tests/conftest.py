"""Shared paths and helpers for the test suite."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.common.device import usable_cores  # no PyTorch import: the settings below still come first

# As the CLI does for training (harness/cli.py), before PyTorch loads: OpenMP threads sleep rather than
# spin, so the suite holds up when other processes load the CPUs. `make bench` (HARNESS_BENCH_ROUNDS)
# times latency under OpenMP's default, as `harness measure` does.
if "HARNESS_BENCH_ROUNDS" not in os.environ:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Every command computes with the same threads whatever the load (harness/common/device.py would take fewer on a
# busy machine): tests that compare two runs' numbers need the same thread count in both. `make test` runs the
# suite in parallel processes (pytest-xdist), which share the cores out.
# The xdist controller loads this file too, and its workers inherit its environment: each process decides its own
# share, from the user's OMP_NUM_THREADS if one was given (HARNESS_TEST_USER_THREADS keeps it), else the cores.
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
os.environ.setdefault("HARNESS_TEST_USER_THREADS", os.environ.get("OMP_NUM_THREADS", ""))
os.environ["OMP_NUM_THREADS"] = os.environ["HARNESS_TEST_USER_THREADS"] or str(max(1, usable_cores() // WORKERS))

# The tests never touch the user's cache (decoded data, timings): one private folder per session.
os.environ["HARNESS_CACHE"] = tempfile.mkdtemp(prefix="harness-test-cache-")

# `make test` hands whole files to its workers in collection order (--dist loadfile --no-loadscope-reorder): the
# longest start first (each 55-530 s on two idle cores), so that no worker ends alone with one of them. The Slurm
# file comes third: its jobs are more processes computing beside the tests, and the first test of test_variants.py
# trains the heaviest network (report 000's teacher: 37 s alone, 76 s beside the Slurm jobs at a89809a).
LONGEST_FILES = (
    "test_variants.py",
    "test_train.py",
    "test_slurm.py",
    "test_readme.py",
    "test_sweep_until.py",
    "test_reliability.py",
    "test_augment_batched.py",
    "test_gpu_check.py",
    "test_faults_messages.py",
    "test_sweep.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    first = {name: rank for rank, name in enumerate(LONGEST_FILES)}
    items.sort(key=lambda item: first.get(item.path.name, len(first)))  # stable: each file keeps its order


REPO = Path(__file__).resolve().parents[1]
SPECS_DIR = REPO / "reproductions"
COMMON = SPECS_DIR / "common.toml"
SPEC_FILES = sorted(p for p in SPECS_DIR.glob("*.toml") if p != COMMON)  # the five reports
REFERENCE_FILES = sorted(SPECS_DIR.glob("references/*.toml"))  # networks they compare with


@pytest.fixture
def spec_copy(tmp_path: Path):
    """Write a spec text (by default a copy of a shipped spec, edited) into a temporary folder."""

    def write(text: str, name: str = "spec.toml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


# The real-image CIFAR-10 copy that every checkout and CI run has beside the project (../shared).
JPEG_ARCHIVE = Path(os.environ.get("HARNESS_TEST_ARCHIVE", REPO.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"))


@pytest.fixture
def broken_spec(spec_copy) -> Path:
    """DMSResNet with a teacher checkpoint that does not exist: its student fails, its other variants run."""
    return spec_copy(
        (SPECS_DIR / "dmsresnet.toml")
        .read_text()
        .replace(
            'teacher_variant = "teacher", temperature = 6.0, kd_weight = 0.95',
            'teacher_variant = "teacher", teacher_checkpoint = "missing.pt", temperature = 6.0, kd_weight = 0.95',
            1,
        ),
        name="broken.toml",
    )


@pytest.fixture(scope="session")
def smoke_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One results folder for the session's plain smoke runs (RunOptions(profile="smoke", subset=64) on the CPU,
    seed 0): the first test to need a recipe trains it, later ones find it complete and read it, so each is
    trained once per test run. Tests that edit, kill or count a folder's runs keep their own."""
    return tmp_path_factory.mktemp("smoke-runs")


# A real full-budget record kept as the study tests' input: report 003's ResNet-12 grid, 70 epochs, seed 0, on
# the JPEG copy (schema 2: epochs counted from 0), run at b05a559 and shipped in results/ until resnet10.toml took
# the notebook's computed normalisation (7973ca7). Under the normalisation it ran with, the spec gives it its
# spec hash again, so the tests do not change whenever results/ does.
RECORDED = REPO / "tests" / "data" / "results"
RECORDED_RECORD = RECORDED / "resnet10" / "resnet12-grid" / "full-e70-nall-seed0-95c4031ca9a9.json"
RECORDED_DATA = ("mean = [0.4914, 0.4822, 0.4465]", "std = [0.2470, 0.2435, 0.2616]")


def with_data(text: str, mean: str, std: str) -> str:
    """A spec's text with its [data] normalisation lines replaced."""
    text = re.sub(r"(?m)^mean = \[.*\]$", mean, text, count=1)
    return re.sub(r"(?m)^std = \[.*\]$", std, text, count=1)


def resnet10_as_recorded() -> str:
    """resnet10.toml as RECORDED_RECORD ran it: the shipped text with the normalisation of then."""
    return with_data((SPECS_DIR / "resnet10.toml").read_text(encoding="utf-8"), *RECORDED_DATA)


@pytest.fixture(scope="session")
def recorded_spec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("recorded-spec") / "resnet10.toml"
    path.write_text(resnet10_as_recorded(), encoding="utf-8")
    return path


def resnet12_grid_text(model: tuple[tuple[str, str], ...] = (), extra: str = "") -> str:
    """resnet10.toml with report 003's resnet12-grid changed: replacements in its model line, lines added after it."""
    text = (SPECS_DIR / "resnet10.toml").read_text(encoding="utf-8")
    line = next(line for line in text.splitlines() if line.startswith("model = { arch"))  # resnet12-grid's
    edited = line
    for old, new in model:
        assert old in edited, f"resnet12-grid's model line has no {old!r}"
        edited = edited.replace(old, new)
    return text.replace(line, f"{edited}\n{extra}" if extra else edited, 1)


def narrow_dmsresnet_text() -> str:
    """DMSResNet's spec with its recipe whole (Lookahead, clipping, mixup, dropout, the SE unit) on a narrow,
    shallow network: the training state a resume must restore, at about a fortieth of the compute."""
    text = (SPECS_DIR / "dmsresnet.toml").read_text(encoding="utf-8")
    model = text.index("\n[model]\n")
    head, tail = text[:model], text[model:]
    for old, new in (
        ("blocks = [4, 4, 3]", "blocks = [1, 1, 1]"),
        ("widths = [64, 128, 256]", "widths = [16, 32, 64]"),
        ("stem_width = 64", "stem_width = 16"),
    ):
        assert old in tail, f"dmsresnet.toml's [model] has no {old!r}"
        tail = tail.replace(old, new, 1)
    return head + tail


@pytest.fixture(scope="session")
def narrow_dmsresnet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("narrow") / "dmsresnet.toml"
    path.write_text(narrow_dmsresnet_text(), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def counted_sizes() -> None:
    """Every shipped variant's parameters and MACs counted once into the session's cache, as a user's first
    table does: tests of many whole tables then read them (a first table counts for 30 s on a busy CPU)."""
    from harness.measure.size import size_of
    from harness.spec import load_spec

    for path in SPEC_FILES + REFERENCE_FILES:
        for variant in load_spec(path).variants.values():
            size_of(variant.recipe.model)


@pytest.fixture(scope="session")
def jpeg_archive() -> Path:
    """The real-image CIFAR-10 copy beside the project, decoded once per session into a private cache."""
    assert JPEG_ARCHIVE.exists(), f"the tests need {JPEG_ARCHIVE} (see ../shared/README.md)"
    from harness.data.cifar10 import load_cifar10

    load_cifar10(JPEG_ARCHIVE)  # decode now, so that tests time their own work only
    return JPEG_ARCHIVE


def wait_until(condition: Callable[[], object], failure: str, seconds: float = 60, every: float = 0.005) -> None:
    """Poll `condition` until it holds; fail with `failure` once `seconds` have passed."""
    import time

    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, failure
        time.sleep(every)


SLURM_START_LOG = Path("/tmp/harness-slurm-start.log")  # where `make test` puts start-cluster.sh's account


@pytest.fixture(scope="session")
def slurm_cluster() -> str:
    """The one-node Slurm cluster `make test` started (tests/slurm/start-cluster.sh): its SLURM_CONF.

    Without one the test skips and says why; with HARNESS_REQUIRE_SLURM=1 (CI) it fails instead.
    """
    import shutil
    import subprocess

    conf = os.environ.get("SLURM_CONF")
    reason = ""
    if not conf or shutil.which("sinfo") is None:
        lines = SLURM_START_LOG.read_text().strip().splitlines() if SLURM_START_LOG.exists() else []
        reason = lines[-1] if lines else "SLURM_CONF is not set (run the tests with `make test`)"
    else:
        state = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, check=False)
        if state.returncode != 0 or not state.stdout.strip():
            reason = f"sinfo failed: {state.stderr.strip()}"
    if reason:
        message = f"no one-node Slurm cluster: {reason}"
        if os.environ.get("HARNESS_REQUIRE_SLURM"):
            pytest.fail(message + " (HARNESS_REQUIRE_SLURM is set: the Slurm tests must run)")
        pytest.skip(message)
    return conf
