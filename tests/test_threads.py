"""Threads: --threads and OMP_NUM_THREADS are obeyed; otherwise a busy machine gets fewer threads."""

from __future__ import annotations

import json
import subprocess
import sys
import time
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


def test_a_busy_machine_gets_fewer_threads(monkeypatch) -> None:
    # One process spinning on one core: this command leaves it that core (two processes that each take
    # every core slow each other about tenfold). Load from elsewhere only lowers the count further.
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    cores = usable_cores()
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)  # let it start
        choice = choose_threads(None)
    finally:
        spinner.kill()
        spinner.wait()
    assert 1 <= choice.threads <= max(1, cores - 1)
    if cores > 1:
        assert f"of {cores} threads" in choice.reason and "--threads" in choice.reason


def test_a_run_records_the_threads_it_was_given(jpeg_archive: Path, tmp_path: Path, capsys) -> None:
    argv = ["run", str(SPECS_DIR / "resnet10.toml"), "--variant", "resnet12-grid", "--profile", "smoke"]
    argv += ["--subset", "64", "--data", str(jpeg_archive), "--results", str(tmp_path), "--threads", "1", "--quiet"]
    assert main(argv) == 0
    (record,) = tmp_path.glob("resnet10/resnet12-grid/*.json")
    assert json.loads(record.read_text())["device"]["threads"] == 1
    assert "(cpu, 1 thread)" in capsys.readouterr().out  # the estimate says what it runs with
