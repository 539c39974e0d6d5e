"""Hostile records (issue 27): figures no run can produce are refused where records are read, one warning per
file naming the field, and never pooled; every JSON output parses strictly; a record of a newer harness is
named as such, never as stale."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from harness.cli import main
from harness.results.identity import RESULTS_VERSION
from tests.conftest import REPO
from tests.records import record_json


@pytest.fixture(autouse=True)
def _project_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)


def write(folder: Path, records: list[dict[str, Any]]) -> Path:
    for i, r in enumerate(records):  # json.dumps writes NaN and Infinity, as a careless writer would
        (folder / f"{r['report']}-{r['variant']}-{i}.json").write_text(json.dumps(r))
    return folder


def strict(text: str) -> Any:
    """JSON as the standard defines it: NaN and Infinity are not JSON."""

    def refuse(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def table(capsys, folder: Path) -> tuple[list[dict[str, Any]], list[str]]:
    assert main(["table", "--results", str(folder), "--format", "json", "--no-latency"]) == 0
    out, err = capsys.readouterr()
    return strict(out), err.strip().splitlines()


def dms_row(board: list[dict[str, Any]]) -> dict[str, Any]:
    return next(r for r in board if (r["report"], r["variant"]) == ("dmsresnet", "as-coded"))


def test_three_nan_seeds_are_refused_on_reading_not_pooled(capsys, tmp_path: Path) -> None:
    """Three seeds of NaN crashed `table` and `compare` (AttributeError from statistics on NaN)."""
    nan = [record_json("dmsresnet", "as-coded", s, math.nan) for s in range(3)]
    others = [record_json("resnet4323-se", "as-coded", s, a) for s, a in enumerate((95.0, 95.1, 95.2))]
    folder = write(tmp_path, nan + others)
    board, err = table(capsys, folder)
    assert dms_row(board)["n_seeds"] == 0 and dms_row(board)["verdict"] == "not run"
    refused = [line for line in err if "test_acc" in line]
    assert len(refused) == 3 and len(err) == 3, err
    assert all(line.startswith(f"harness: warning: {folder}/dmsresnet-as-coded-") for line in refused)
    assert main(["compare", "dmsresnet/as-coded", "resnet4323-se/as-coded", "--results", str(folder)]) == 2
    assert "dmsresnet/as-coded: no finished run" in capsys.readouterr().err


def test_one_nan_seed_leaves_the_table_json_strict(capsys, tmp_path: Path) -> None:
    """One NaN seed was shown as `nan (1)`, and `--format json` wrote a bare NaN."""
    board, err = table(capsys, write(tmp_path, [record_json("dmsresnet", "as-coded", 0, math.nan)]))
    assert dms_row(board)["n_seeds"] == 0 and dms_row(board)["test_acc_mean"] is None
    assert len(err) == 1 and "test_acc" in err[0] and "nan" in err[0].lower()
    assert main(["table", "--results", str(tmp_path), "--no-latency"]) == 0
    assert "nan" not in capsys.readouterr().out.lower()


def test_an_accuracy_of_170_percent_is_refused_not_compared(capsys, tmp_path: Path) -> None:
    """A 170% record was compared (`+159.62 points, p = 1.3e-05`) without a word."""
    runs = [record_json("dmsresnet", "as-coded", s, a) for s, a in enumerate((170.0, 96.2, 96.1, 96.3))]
    runs += [record_json("resnet4323-se", "as-coded", s, a) for s, a in enumerate((95.0, 95.1, 95.2))]
    folder = write(tmp_path, runs)
    board, err = table(capsys, folder)
    assert dms_row(board)["n_seeds"] == 3 and dms_row(board)["test_acc_mean"] == pytest.approx(96.2)
    assert len(err) == 1 and "dmsresnet-as-coded-0.json" in err[0] and "test_acc" in err[0] and "170" in err[0]
    assert main(["compare", "dmsresnet/as-coded", "resnet4323-se/as-coded", "--results", str(folder), "--json"]) == 0
    out, err_text = capsys.readouterr()
    assert strict(out)["n_a"] == 3 and strict(out)["welch"]["mean_a"] == pytest.approx(96.2) and "test_acc" in err_text


def _break(field: str, value: float):
    def edit(r: dict[str, Any]) -> None:
        if field.startswith("history."):
            r["history"][1][field.removeprefix("history.")] = value
        elif field.startswith("test_acc_by_rule."):
            r["test_acc_by_rule"][field.removeprefix("test_acc_by_rule.")] = value
        elif field == "robustness.mean":
            r["robustness"]["mean"] = value
        else:
            r[field] = value

    return edit


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("val_acc", -3.0, "val_acc"),
        ("test_acc_by_rule.best-val", 100.5, "test_acc_by_rule.best-val"),
        ("history.val_acc", math.inf, "history[1].val_acc"),  # its place in the file
        ("history.seconds", -60.0, "history[1].seconds"),
        ("robustness.mean", math.nan, "robustness.mean"),
        ("wall_time_s", -1.0, "wall_time_s"),
        ("device_hours", math.inf, "device_hours"),
        ("train_images_per_s", math.nan, "train_images_per_s"),
    ],
)
def test_each_impossible_figure_is_named_and_its_record_refused(
    capsys, tmp_path: Path, field: str, value: float, named: str
) -> None:
    runs = [record_json("dmsresnet", "as-coded", s, a) for s, a in enumerate((96.0, 96.2, 96.1))]
    _break(field, value)(runs[0])
    board, err = table(capsys, write(tmp_path, runs))
    assert dms_row(board)["n_seeds"] == 2, "the record with the impossible figure was pooled"
    assert len(err) == 1 and "dmsresnet-as-coded-0.json" in err[0] and named in err[0], err


def test_a_record_of_a_newer_harness_is_named_so_never_stale(capsys, tmp_path: Path) -> None:
    """A record of a newer results version was counted as stale, which the legend defines as older."""
    newer = RESULTS_VERSION + 1
    runs = [record_json("dmsresnet", "as-coded", s, a) for s, a in enumerate((96.0, 96.2))]
    runs.append(record_json("dmsresnet", "as-coded", 2, 96.1, results_version=newer))
    board, err = table(capsys, write(tmp_path, runs))
    row = dms_row(board)
    assert (row["n_seeds"], row["n_stale"]) == (2, 0)
    assert len(err) == 1 and f"newer harness (results version {newer} > {RESULTS_VERSION})" in err[0], err
    assert "upgrade the harness" in err[0] and "stale" not in err[0]
