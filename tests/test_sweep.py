"""Sweeps through submitit: the plan, local runs (with a broken one and a re-issue), and Slurm's sbatch."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import stat
from pathlib import Path

from harness.cli import main
from harness.spec import load_spec, load_specs
from harness.sweep import RunJob, Task, make_executor, plan
from harness.train.request import RunOptions
from tests.conftest import SPEC_FILES, SPECS_DIR, wait_until


def test_plan_runs_teachers_first_and_each_common_network_once(tmp_path: Path) -> None:
    specs, _ = load_specs(SPEC_FILES)
    tasks = plan(specs, "all", 2, ["own", "common"], RunOptions(profile="smoke"), tmp_path)
    teacher = [t for t in tasks if t.variant == "teacher" and t.options.protocol == "own"]
    assert {t.options.seed for t in teacher} == {0, 1} and all(t.wave == 0 for t in teacher)
    assert tasks.index(teacher[-1]) < min(i for i, t in enumerate(tasks) if t.wave == 1)
    own = [t for t in tasks if t.options.protocol == "own"]
    assert len(own) == 2 * sum(len(s.variants) for s in specs)
    common = [t for t in tasks if t.options.protocol == "common"]
    # dmsresnet's as-coded, as-written, se-mixup and se share one network: one common run per seed
    assert (
        len(
            [t for t in common if t.report == "dmsresnet" and t.variant in ("as-coded", "as-written", "se-mixup", "se")]
        )
        == 2
    )
    assert all(t.options.resume for t in tasks)


def test_a_student_with_a_teacher_checkpoint_does_not_pull_in_its_teacher(tmp_path: Path, spec_copy) -> None:
    text = (
        (SPECS_DIR / "dmsresnet.toml")
        .read_text()
        .replace(
            'teacher_variant = "teacher", temperature = 6.0, kd_weight = 0.95',
            'teacher_variant = "teacher", teacher_checkpoint = "missing.pt", temperature = 6.0, kd_weight = 0.95',
            1,
        )
    )
    spec = load_spec(spec_copy(text))
    tasks = plan([spec], "as-written", 1, ["own"], RunOptions(), tmp_path)
    assert [t.variant for t in tasks] == ["as-written"]


def test_local_sweep_lands_records_survives_a_broken_run_and_skips_on_reissue(
    jpeg_archive: Path, tmp_path: Path, broken_spec: Path, capsys
) -> None:
    results = tmp_path / "results"
    common = [
        "--profile",
        "smoke",
        "--subset",
        "64",
        "--data",
        str(jpeg_archive),
        "--results",
        str(results),
        "--executor",
        "local",
        "--parallel",
        "2",
        "--retries",
        "1",
    ]
    argv = [
        "sweep",
        str(SPECS_DIR / "resnet10.toml"),
        str(broken_spec),
        "--variants",
        "resnet12-grid,as-written",
        "--seeds",
        "2",
        *common,
    ]
    assert main(argv) == 1
    out = capsys.readouterr().out
    records = sorted(results.glob("resnet10/resnet12-grid/*.json"))
    assert len(records) == 2 and all(json.loads(p.read_text())["status"] == "complete" for p in records)
    broken_rows = [line for line in out.splitlines() if "| as-written" in line]
    assert len(broken_rows) == 2 and all("failed" in r and "teacher checkpoint" in r for r in broken_rows)
    assert all("| 2 " in r for r in broken_rows)  # tried, retried once, reported
    assert "2 complete, 0 skipped (already complete), 2 failed or diverged" in out

    assert (
        main(["sweep", str(SPECS_DIR / "resnet10.toml"), "--variants", "resnet12-grid", "--seeds", "2", *common]) == 0
    )
    out = capsys.readouterr().out
    assert "0 complete, 2 skipped (already complete), 0 failed" in out
    assert sorted(results.glob("resnet10/resnet12-grid/*.json")) == records


def test_slurm_job_array_parameters(tmp_path: Path, monkeypatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    captured = tmp_path / "captured.sh"
    sbatch = bin_dir / "sbatch"
    sbatch.write_text(f"#!/bin/sh\ncp \"$1\" {captured}\necho 'Submitted batch job 4242'\n")
    sbatch.chmod(sbatch.stat().st_mode | stat.S_IEXEC)
    srun = bin_dir / "srun"  # submitit checks that it exists; the job script calls it on the cluster
    srun.write_text("#!/bin/sh\nexit 0\n")
    srun.chmod(srun.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    executor = make_executor(
        "slurm",
        tmp_path / "logs",
        parallel=3,
        slurm={"partition": "gpu", "gpus": 1, "cpus": 8, "time": 90, "retries": 2},
    )
    spec = load_spec(SPECS_DIR / "resnet10.toml")
    tasks = plan([spec], "resnet12-grid,resnet14-4-grid", 2, ["own"], RunOptions(profile="full"), tmp_path)
    with executor.batch():
        jobs = [executor.submit(RunJob(task)) for task in tasks]
    script = captured.read_text()
    for line in (
        "#SBATCH --array=0-3%3",
        "#SBATCH --partition=gpu",
        "#SBATCH --gpus-per-node=1",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --time=90",
        "#SBATCH --signal=USR2@180",
        "#SBATCH --job-name=harness-sweep",
    ):
        assert line in script, line
    assert [job.job_id for job in jobs] == [f"4242_{i}" for i in range(4)]
    assert executor.max_num_timeout == 2  # pre-empted or timed-out runs are requeued, then resume
    pickled = sorted((tmp_path / "logs").glob("**/*submitted.pkl"))
    assert len(pickled) == 4
    submitted = [pickle.loads(p.read_bytes()).function for p in pickled]
    assert all(isinstance(f, RunJob) and f.task.options.resume for f in submitted)
    assert {(f.task.variant, f.task.options.seed) for f in submitted} == {
        (v, s) for v in ("resnet12-grid", "resnet14-4-grid") for s in (0, 1)
    }


def test_sweep_rejects_unknown_variants(capsys) -> None:
    assert main(["sweep", str(SPECS_DIR / "resnet10.toml"), "--variants", "resnet12-gird"]) == 2
    assert (
        "--variants: no variant 'resnet12-gird' in these specs (did you mean resnet12-grid?)" in capsys.readouterr().err
    )


def test_task_label() -> None:
    task = Task("x.toml", "resnet10", "resnet12-grid", RunOptions(seed=3, protocol="common"), "r", 1)
    assert task.label == "resnet10/resnet12-grid [common] seed 3"


def test_stopping_a_local_sweep_stops_its_runs_and_the_same_command_resumes_them(
    jpeg_archive: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    import fcntl
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import REPO

    results = tmp_path / "results"
    argv = [
        sys.executable, "-m", "harness.cli", "sweep", str(SPECS_DIR / "resnet10.toml"), "--variants", "resnet12-grid",
        "--profile", "smoke", "--subset", "64", "--epochs", "3", "--data", str(jpeg_archive),
        "--results", str(results), "--executor", "local", "--device", "cpu", "--cpus-per-run", "1",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    sweep = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not list(results.glob("checkpoints/**/epoch-0000.pt")) and time.monotonic() < deadline:
        assert sweep.poll() is None, sweep.communicate()
        time.sleep(0.02)
    # The run is frozen (SIGSTOP) before the sweep is told to stop and thawed once the SIGINT the sweep sends
    # it (through submitit's controller) is pending, so that the stop always lands mid-run: unfrozen, a run
    # on a fast or idle machine could finish its 3 epochs first, and nothing would have been stopped. The
    # sweep is told only once the run is stopped: on a busy machine a run not yet scheduled would take the
    # SIGINT before the SIGSTOP, freeze with it taken, and be killed by submitit a second later unseen.
    (run_pid,) = _pids_of(str(results / "sweep-logs"), "submitit.core._submit")
    try:
        os.kill(run_pid, signal.SIGSTOP)
        wait_until(lambda: _state(run_pid) == "T", "the run never stopped on its SIGSTOP")
        assert not list(results.glob("resnet10/resnet12-grid/*.json")), "the run ended before it could be stopped"
        # a sweep on a known device only plans, submits and polls: it starts in a second, without PyTorch
        assert "libtorch" not in Path(f"/proc/{sweep.pid}/maps").read_text(), "the sweep itself loaded PyTorch"
        sweep.send_signal(signal.SIGTERM)
        wait_until(lambda: _pending(run_pid, signal.SIGINT), "the sweep never sent its run a SIGINT")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(run_pid, signal.SIGCONT)  # it answers its SIGINT now; never left frozen behind a failed test
    _, err = sweep.communicate(timeout=120)
    assert sweep.returncode == 130 and "stopped 1 runs; their checkpoints keep the work" in err, err
    time.sleep(1)
    assert not _pids_of(str(results / "sweep-logs")), "a run outlived its sweep"
    assert list(results.glob("checkpoints/**/epoch-*.pt"))
    for lock in results.glob("**/run.lock"):  # an flock: a file left behind is free once its process is gone
        with open(lock) as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError if the stopped run still held it
    # The same command again, in this process (which has PyTorch loaded already), polling its run more often.
    monkeypatch.setattr("harness.sweep.POLL_SECONDS", 0.1)
    code = main(argv[3:])
    out, err = capsys.readouterr()
    assert code == 0 and "1 complete, 0 skipped" in out, err
    log = "\n".join(p.read_text() for p in (results / "sweep-logs").glob("*.out"))
    assert "resuming resnet10/resnet12-grid after epoch" in log
    (record,) = results.glob("resnet10/resnet12-grid/*.json")
    assert len(json.loads(record.read_text())["history"]) == 3


def _pids_of(*words: str) -> list[int]:
    """The processes whose command line holds every word."""
    import subprocess

    # -ww: whole command lines; else ps cuts them at $COLUMNS (pytest sets 80), before the paths they hold
    table = subprocess.run(["ps", "-ww", "-eo", "pid=,args="], capture_output=True, text=True, check=True).stdout
    return [int(line.split(None, 1)[0]) for line in table.splitlines() if all(w in line for w in words)]


def _state(pid: int) -> str:
    """A process's state letter (R, S, D, T for stopped, Z), from its /proc status; '' once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return ""
    return next(line.split()[1] for line in status.splitlines() if line.startswith("State:"))


def _pending(pid: int, signum: int) -> bool:
    """Whether a signal waits to be delivered to a process (Linux: its /proc status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    masks = [int(line.split()[1], 16) for line in status.splitlines() if line.startswith(("SigPnd:", "ShdPnd:"))]
    return any(mask & (1 << (signum - 1)) for mask in masks)
