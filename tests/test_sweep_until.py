"""`harness sweep --until-decided` (issue 28): seeds in rounds until the sequential test decides, locally and on
Slurm; a stopped sweep resumes from its records without re-running a seed; refusals before any run.

The runs are ResNet-12 (grid) smoke runs on 256 images, one thread each: seeds 0..3 score about 7.4, 9.4, 9.8
and 8.2% on their 256 test images (on 64, with 64 test images, they spread too widely to decide). A target of
5% is clearly passed (decided at the 3rd seed: at the 2nd the one-degree-of-freedom t cannot yet cross); a
target of 9%, inside the seeds' own spread, stays open to the last of --max-seeds 4.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness import rounds
from harness.cli import main
from tests.conftest import REPO, SPECS_DIR

R10 = str(SPECS_DIR / "resnet10.toml")
MAX_SEEDS = 4


def argv(results: Path, data: Path, target: str, *extra: str) -> list[str]:
    return [
        "sweep", R10, "--variants", "resnet12-grid", "--profile", "smoke", "--subset", "256", "--data", str(data),
        "--results", str(results), "--cpus-per-run", "1", "--until-decided", "--max-seeds", str(MAX_SEEDS),
        "--target", target, *extra,
    ]  # fmt: skip


def on_disk(results: Path) -> dict[int, dict[str, Any]]:
    """The finished records of the sweep's variant, by seed."""
    found = [json.loads(p.read_text()) for p in results.glob("resnet10/resnet12-grid/*.json")]
    by_seed = {r["seed"]: r for r in found if r["status"] == "complete"}
    assert len(by_seed) == len(found), "a seed was recorded twice"
    return by_seed


def submitted_seeds(results: Path) -> list[int]:
    """The seed of every run the sweep submitted (submitit keeps each submission's pickle in the job folder)."""
    pickles = (results / "sweep-logs").glob("*_submitted.pkl")
    return sorted(pickle.loads(p.read_bytes()).function.task.options.seed for p in pickles)


def summary(results: Path) -> dict[str, Any]:
    return json.loads((results / "sweep-logs" / rounds.SUMMARY).read_text())


@pytest.fixture(scope="module")
def clear(jpeg_archive: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """An uninterrupted local sweep on the clear target: its folder, printed lines, records and summary."""
    results = tmp_path_factory.mktemp("until") / "results"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(argv(results, jpeg_archive, "5"))
    found = {"records": on_disk(results), "summary": summary(results), "submitted": submitted_seeds(results)}
    return {"code": code, "out": out.getvalue(), "at": results, **found}


def test_a_clear_target_stops_early_and_a_target_at_the_mean_runs_to_max_seeds(
    clear: dict[str, Any], jpeg_archive: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert clear["code"] == 0, clear["out"]
    lines = clear["out"].splitlines()
    assert lines[0].startswith("resnet10/resnet12-grid: 2 seeds; target >= 5%: open, mean ")
    assert lines[1].startswith("resnet10/resnet12-grid: 3 seeds; target >= 5%: reached, mean ")
    assert lines[-1] == "resnet10/resnet12-grid: decided after 3 seeds (sequential, alpha = 0.05)"
    assert sorted(clear["records"]) == [0, 1, 2] == clear["submitted"]  # stopped before --max-seeds
    (variant,) = clear["summary"]["variants"]
    assert variant["state"] == "decided" and [look["seeds"] for look in variant["looks"]] == [2, 3]
    decision = variant["decisions"]["target >= 5%"]
    assert decision["answer"] == "reached" and decision["boundary"].startswith("one-sided t above")
    assert clear["summary"]["design"]["max_seeds"] == MAX_SEEDS and decision["ci"][0] > 5

    # the same folder, a target inside the seeds' spread: seeds 0-2 are reused, seed 3 runs, then it stops
    assert main(argv(clear["at"], jpeg_archive, "9")) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == f"resnet10/resnet12-grid: undecided at --max-seeds {MAX_SEEDS}"
    assert f"{MAX_SEEDS} seeds; target >= 9%: undecided, mean " in out
    assert sorted(on_disk(clear["at"])) == list(range(MAX_SEEDS)) == submitted_seeds(clear["at"])
    assert all(on_disk(clear["at"])[s]["run_id"] == clear["records"][s]["run_id"] for s in (0, 1, 2))


def test_a_sweep_stopped_after_its_first_round_resumes_without_rerunning_a_seed(
    clear: dict[str, Any], jpeg_archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real, calls = rounds.execute, []

    def stop_in_round_two(tasks: Any, done: Any, executor: Any, pace: Any, progress: Any) -> Any:
        calls.append(len(tasks))

        def interrupted(line: str) -> None:  # what SIGTERM does: cmd_sweep's handler raises KeyboardInterrupt
            raise KeyboardInterrupt

        return real(tasks, done, executor, pace, interrupted if len(calls) == 2 else progress)

    results = tmp_path / "results"
    monkeypatch.setattr(rounds, "execute", stop_in_round_two)
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(argv(results, jpeg_archive, "5")) == 130
    first = on_disk(results)
    assert sorted(first) == [0, 1]  # seed 2 was stopped mid-run

    monkeypatch.setattr(rounds, "execute", real)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(argv(results, jpeg_archive, "5")) == 0
    after = on_disk(results)
    for seed in (0, 1):  # the finished seeds were found, never run again
        assert (after[seed]["run_id"], after[seed]["finished_at"]) == (
            first[seed]["run_id"],
            first[seed]["finished_at"],
        )
    assert sorted(after) == sorted(clear["records"])
    assert submitted_seeds(results) == [0, 1, 2, 2]  # seed 2 once stopped, once resumed; 0 and 1 once each
    assert out.getvalue().splitlines()[-1] == clear["out"].splitlines()[-1]
    assert summary(results)["variants"] == clear["summary"]["variants"]


NO_CLAIM = (
    "harness: error: --until-decided: no claim can be judged at this budget (smoke: 1 of 70 epochs on 64 images); "
    "claims are judged on full-budget runs on the official CIFAR-10 pixels: use --profile full, or --target PCT "
    "to check the machinery"
)
TOO_FEW = "harness: error: --max-seeds: expected 2 to 30 (the sequential design's first look is at 2 seeds), got 1"
FIXED = "harness: error: --seeds: not with --until-decided, which adds seeds until decided (--max-seeds caps them)"
PIXELS = (
    "harness: error: --until-decided: no claim can be judged on these pixels (cifar10-jpeg.tar.gz (JPEG image "
    "folders) is not the official CIFAR-10); claims are judged on the official CIFAR-10 only: use --target PCT to "
    "check the machinery"
)
SMOKE = ("--profile", "smoke", "--subset", "64")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (SMOKE, NO_CLAIM),
        ((*SMOKE, "--max-seeds", "1", "--target", "5"), TOO_FEW),
        ((*SMOKE, "--target", "5", "--seeds", "3"), FIXED),
        (("--profile", "full"), PIXELS),  # the full budget, but on the JPEG copy
    ],
)
def test_refusals_are_one_line_before_anything_runs(
    extra: tuple[str, ...], message: str, jpeg_archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["sweep", R10, "--variants", "resnet12-grid", "--data", str(jpeg_archive), "--results", str(tmp_path)]
    assert main([*base, "--until-decided", *extra]) == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [message] and captured.out == ""
    assert not list(tmp_path.iterdir())  # nothing ran, nothing was written


def test_until_decided_options_without_the_flag_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sweep", R10, "--target", "5"]) == 2
    assert capsys.readouterr().err == "harness: error: --target: only with --until-decided\n"


@pytest.mark.slurm
def test_on_slurm_each_round_is_one_job_array_and_the_decision_is_the_local_one(
    slurm_cluster: str, clear: dict[str, Any], jpeg_archive: Path, tmp_path: Path
) -> None:
    results = tmp_path / "results"
    slurm = ["--executor", "slurm", "--gpus-per-run", "0"]
    done = subprocess.run(
        [sys.executable, "-m", "harness.cli", *argv(results, jpeg_archive, "5", *slurm)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("submitted job array") == 2  # seeds 0-1, then seed 2
    records = on_disk(results)
    # a round of one run is a plain job (submitit submits a one-task batch without --array)
    arrays = {s: r["launcher"].get("array_job_id", r["launcher"]["job_id"]) for s, r in records.items()}
    assert sorted(records) == [0, 1, 2] and arrays[0] == arrays[1] != arrays[2]
    assert done.stdout.splitlines()[-1] == clear["out"].splitlines()[-1]
    assert summary(results)["variants"] == clear["summary"]["variants"]


def test_a_look_never_pools_a_record_with_a_figure_no_run_produces(tmp_path: Path) -> None:
    """A record file whose accuracy is impossible (140%) is refused by a look as the table refuses it: the seed
    counts as unfinished, and no decision rests on it (bug: the look read record files past that check and
    pooled the 140% into its t-test, leaving the variant open on a mean of 118%)."""
    from harness.results.sequential import design
    from tests.records import SPECS, record_json

    spec = SPECS["dmsresnet"]
    paths = []
    for seed, acc in enumerate((96.1, 140.0)):
        path = tmp_path / f"seed{seed}.json"
        path.write_text(json.dumps(record_json("dmsresnet", "as-coded", seed, acc)))
        paths.append(str(path))
    tracked = rounds.Tracked(spec, "as-coded", tuple(rounds._claims(spec, "as-coded")))
    rounds._look(tracked, paths, design(), is_target=False)
    assert tracked.state == "failed" and tracked.why == "no finished run of seed 1", (tracked.state, tracked.why)
    assert tracked.decided == {} and tracked.looks == []
