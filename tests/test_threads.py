"""Threads: --threads and OMP_NUM_THREADS are obeyed; otherwise a busy machine gets fewer threads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from harness.cli import main
from harness.common.device import choose_threads, usable_cores
from tests.conftest import SPECS_DIR


@pytest.fixture(autouse=True)
def _restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_threads_asked_for_are_the_threads_used(monkeypatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert choose_threads(5).threads == 5  # --threads first
    assert choose_threads(None).threads == 3  # then the environment
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert choose_threads(None, deterministic=True).threads == usable_cores()  # a resume must match: no guess


@pytest.mark.parametrize(
    ("share", "threads"),
    [(None, 4), (0.0, 4), (0.1, 4), (0.25, 3), (0.5, 2), (0.6, 2), (0.99, 1), (1.0, 1)],
)
def test_a_busy_machine_gets_fewer_threads(monkeypatch, share: float | None, threads: int) -> None:
    """The cores other processes leave free, at least one, said when fewer than all: from a load given here,
    never the machine's (no test may depend on how busy it is). Catches zero threads on a full machine,
    rounding the free cores the wrong way, and a reduction made without saying so."""
    from harness.common import device

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(device, "usable_cores", lambda: 4)
    monkeypatch.setattr(device, "other_cpu_use", lambda window_s: share)
    choice = choose_threads(None)
    assert choice.threads == threads
    if threads < 4:
        assert choice.reason == (
            f"other processes keep {share:.0%} of the CPUs busy: computing with {threads} of 4 threads "
            "(--threads N or OMP_NUM_THREADS to choose)"
        )
    else:
        assert choice.reason == ""
    assert choose_threads(None, deterministic=True).threads == 4  # a resume computes as it did: load ignored


def test_a_run_records_the_threads_it_was_given(jpeg_archive: Path, tmp_path: Path, capsys) -> None:
    argv = ["run", str(SPECS_DIR / "resnet10.toml"), "--variant", "resnet12-grid", "--profile", "smoke"]
    argv += ["--subset", "64", "--data", str(jpeg_archive), "--results", str(tmp_path), "--threads", "1", "--quiet"]
    assert main(argv) == 0
    (record,) = tmp_path.glob("resnet10/resnet12-grid/*.json")
    assert json.loads(record.read_text())["device"]["threads"] == 1
    assert "(cpu, 1 thread)" in capsys.readouterr().out  # the estimate says what it runs with


def test_each_test_process_computes_with_its_share_of_the_cores() -> None:
    # `make test` runs the suite in PYTEST_XDIST_WORKER_COUNT processes that share the cores out
    # (tests/conftest.py); the controller's own setting, inherited by its workers, gave each every core.
    import os

    # OMP_NUM_THREADS, which PyTorch read when it loaded: in-process `harness run --threads 1` tests change torch's
    # count for the rest of their process
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    given = os.environ.get("HARNESS_TEST_USER_THREADS", "")  # a user's OMP_NUM_THREADS wins
    assert os.environ["OMP_NUM_THREADS"] == (given or str(max(1, usable_cores() // workers)))
