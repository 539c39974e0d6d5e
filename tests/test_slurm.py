"""Sweeps on a real one-node Slurm cluster (tests/slurm/start-cluster.sh, started by `make test`).

Job arrays through sbatch, records identical to a local sweep's, a requeue in the middle of a run and a
task that reaches its time limit, each resuming from its last checkpoint. Each test says why it skips
when no cluster can be started (not as root, say); in CI (HARNESS_REQUIRE_SLURM=1) they never skip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, SPECS_DIR, wait_until

pytestmark = pytest.mark.slurm

R10 = str(SPECS_DIR / "resnet10.toml")
# Fields that say where, when, how fast and by whom a run ran, not what it computed.
PROVENANCE = {
    "launcher",
    "wall_time_s",
    "device_hours",
    "train_images_per_s",
    "finished_at",
    "record_path",
    "checkpoint_dir",
}


def sweep_argv(results: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "harness.cli", "sweep", R10, "--results", str(results), *extra]


def harness_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def run_sweep(results: Path, *extra: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        sweep_argv(results, *extra), env=harness_env(), capture_output=True, text=True, timeout=timeout, check=False
    )


def records(results: Path) -> dict[str, dict[str, Any]]:
    """The finished records under `results`, by file name."""
    return {p.name: json.loads(p.read_text()) for p in results.glob("resnet10/*/*.json")}


def computed(record: dict[str, Any]) -> dict[str, Any]:
    """What a run computed: its record without provenance and per-epoch timings."""
    out = {k: v for k, v in record.items() if k not in PROVENANCE}
    out["history"] = [
        {k: v for k, v in h.items() if k not in ("seconds", "train_images_per_s")} for h in record["history"]
    ]
    return out


def slurm_options(*extra: str) -> list[str]:
    return ["--executor", "slurm", "--gpus-per-run", "0", "--cpus-per-run", "1", *extra]


def test_a_sweep_is_one_job_array_whose_records_are_a_local_sweeps(
    slurm_cluster: str, jpeg_archive: Path, tmp_path: Path
) -> None:
    budget = ["--profile", "smoke", "--subset", "64", "--data", str(jpeg_archive), "--seeds", "2"]
    variants = ["--variants", "resnet12-grid,resnet12-as-written"]
    slurm = run_sweep(tmp_path / "slurm", *variants, *budget, *slurm_options("--parallel", "2"))
    assert slurm.returncode == 0, slurm.stderr[-3000:]
    assert "submitted job array" in slurm.stderr and "watch: squeue -j" in slurm.stderr
    on_slurm = records(tmp_path / "slurm")
    assert len(on_slurm) == 4 and all(r["status"] == "complete" for r in on_slurm.values())
    arrays = {r["launcher"]["array_job_id"] for r in on_slurm.values()}
    tasks = sorted(r["launcher"]["array_task_id"] for r in on_slurm.values())
    assert len(arrays) == 1 and tasks == ["0", "1", "2", "3"]  # one array, a task per run

    local = run_sweep(tmp_path / "local", *variants, *budget, "--executor", "local", "--parallel", "2")
    assert local.returncode == 0, local.stderr[-3000:]
    on_this_machine = records(tmp_path / "local")
    assert set(on_this_machine) == set(on_slurm)  # the same identities, so the same names
    for name, record in on_slurm.items():
        assert computed(record) == computed(on_this_machine[name]), name
        assert on_this_machine[name]["launcher"]["by"] == "local sweep"

    again = run_sweep(tmp_path / "slurm", *variants, *budget, *slurm_options())
    assert again.returncode == 0 and "0 complete, 4 skipped (already complete), 0 failed" in again.stdout


def test_a_task_that_fails_for_good_is_reported_with_its_log_and_the_others_finish(
    slurm_cluster: str, jpeg_archive: Path, tmp_path: Path, broken_spec: Path
) -> None:
    argv = [sys.executable, "-m", "harness.cli", "sweep", R10, str(broken_spec), "--results", str(tmp_path / "r")]
    argv += [
        "--variants",
        "resnet12-grid,as-written",
        "--profile",
        "smoke",
        "--subset",
        "64",
        "--data",
        str(jpeg_archive),
        "--retries",
        "0",
        *slurm_options("--parallel", "2"),
    ]
    done = subprocess.run(argv, env=harness_env(), capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 1, done.stderr[-3000:]
    (failed,) = [line for line in done.stdout.splitlines() if "| as-written" in line]
    assert "failed" in failed and "teacher checkpoint" in failed and ".out)" in failed
    log = Path(failed.rsplit("(", 1)[1].split(")")[0])
    assert log.exists() and "teacher checkpoint" in log.read_text()
    assert "1 complete, 0 skipped (already complete), 1 failed" in done.stdout


def _job_ids() -> list[str]:
    out = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True, check=True).stdout
    return out.split()


def test_a_requeued_run_resumes_from_its_checkpoint_and_ends_as_an_uninterrupted_one(
    slurm_cluster: str, jpeg_archive: Path, tmp_path: Path
) -> None:
    budget = ["--variants", "resnet12-grid", "--profile", "smoke", "--subset", "1024", "--epochs", "4"]
    budget += ["--data", str(jpeg_archive), *slurm_options()]
    whole = run_sweep(tmp_path / "whole", *budget)
    assert whole.returncode == 0, whole.stderr[-3000:]

    results = tmp_path / "requeued"
    sweep = subprocess.Popen(
        sweep_argv(results, *budget), env=harness_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    wait_until(
        lambda: list(results.glob("checkpoints/**/epoch-0000.pt")),
        "timed out waiting for the first checkpoint",
        seconds=300,
        every=0.3,
    )
    (job,) = _job_ids()
    subprocess.run(["scontrol", "requeue", job], check=True)  # pre-empted, in the middle of an epoch
    _, err = sweep.communicate(timeout=600)
    assert sweep.returncode == 0, err[-3000:]
    ((name, record),) = records(results).items()
    assert record["launcher"]["restarts"] == "1"
    assert computed(record) == computed(records(tmp_path / "whole")[name])
    log = "\n".join(p.read_text() for p in (results / "sweep-logs").glob("*.out"))
    assert "resuming resnet10/resnet12-grid after epoch" in log


def test_a_task_at_its_time_limit_is_signalled_requeued_and_finishes(
    slurm_cluster: str, jpeg_archive: Path, tmp_path: Path
) -> None:
    # Over a minute of work under a 1-minute limit, in short epochs: Slurm signals the task before its limit
    # (up to 60 s early, its docs say, so an attempt may live only 15 s), submitit requeues it, and the run
    # resumes from its last epoch checkpoint, as often as it takes. Epochs of a few seconds make every
    # attempt keep some work; the total makes at least one signal certain.
    budget = ["--variants", "resnet12-grid", "--profile", "smoke", "--subset", "1024", "--epochs", "20"]
    done = run_sweep(
        tmp_path,
        *budget,
        "--data",
        str(jpeg_archive),
        *slurm_options("--time-limit", "1", "--retries", "6"),
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (record,) = records(tmp_path).values()
    assert record["status"] == "complete" and len(record["history"]) == 20
    log = "\n".join(p.read_text() for p in (tmp_path / "sweep-logs").glob("*.out"))
    assert "Caught signal SIGUSR2" in log and "Requeued job" in log  # the warning, then the requeue
    assert "resuming resnet10/resnet12-grid after epoch" in log
