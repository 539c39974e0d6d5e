"""The `harness` command end to end: exit codes, one-line errors, JSON shapes, table formats."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.spec import load_specs
from tests.conftest import REPO, SPEC_FILES, SPECS_DIR

SEED_FACT_COUNTS = {
    4_697_742,
    4_993_166,
    4_732_814,
    4_980_234,
    195_738,
    3_152_410,
    4_130_458,
    11_173_962,
    11_178_762,
    23_521_422,
}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_check_accepts_every_shipped_spec(capsys) -> None:
    code, out, err = run(capsys, "check", *map(str, SPEC_FILES))
    assert code == 0 and err == ""
    assert out.count(": ok (") == len(SPEC_FILES) == 5


def test_check_reports_file_key_and_suggestion_with_status_2(capsys, spec_copy) -> None:
    text = (SPECS_DIR / "dmsresnet.toml").read_text().replace("momentum = 0.9", "momentun = 0.9", 1)
    path = spec_copy(text)
    code, out, err = run(capsys, "check", str(path), str(SPEC_FILES[0]))
    assert code == 2 and out == ""
    assert err == f"{path}:train.optimizer.momentun: unknown key (did you mean momentum?)\n"


def test_measure_json_reproduces_every_seed_fact_count(capsys) -> None:
    code, out, _ = run(capsys, "measure", *map(str, SPEC_FILES), "--json", "--no-latency")
    assert code == 0
    rows = json.loads(out)
    assert {r["params"] for r in rows} >= SEED_FACT_COUNTS
    assert len(rows) == sum(len(spec.variants) for spec in load_specs(SPEC_FILES)[0])  # one object per variant
    for row in rows:
        assert {"report", "variant", "params", "macs", "claimed_params", "params_match", "latency_ms_b1"} <= set(row)
        assert row["flops"] == 2 * row["macs"]
        assert row["within_budget"] == (row["params"] <= 5_000_000)
        if row["claimed_params"] is None:
            assert row["params_match"] is None
    by_key = {(r["report"], r["variant"]): r for r in rows}
    assert by_key[("dmsresnet", "as-coded")]["claimed_params"] == 4_697_742
    assert by_key[("dmsresnet", "as-coded")]["params_match"] is True
    assert by_key[("dmsresnet", "teacher")]["claimed_params"] is None
    assert by_key[("dmsresnet", "teacher")]["role"] == "teacher"
    assert by_key[("resnet443-se", "resnet18")]["role"] == "reference"
    assert by_key[("resnet443-se", "as-coded")]["role"] == "model"
    assert by_key[("resnet10", "resnet12-as-written")]["params_match"] is False  # the text's 1x1 shortcut
    assert by_key[("resnet4323-se", "as-coded")]["macs"] == 874_187_776


def test_measure_with_latency_for_one_variant(capsys) -> None:
    code, out, _ = run(
        capsys, "measure", str(SPECS_DIR / "resnet10.toml"), "--variant", "resnet12-grid", "--json", "--rounds", "5"
    )
    assert code == 0
    (row,) = json.loads(out)
    assert row["variant"] == "resnet12-grid" and row["params"] == 195_738
    assert row["latency_ms_b1"] == row["cpu_latency_ms_b1"] > 0
    assert row["cpu_latency_ms_b1_p90"] >= row["cpu_latency_ms_b1"]
    assert row["cpu_throughput_img_s_b256"] > 0 and row["cpu_threads"] >= 1


def test_measure_human_table_states_the_convention(capsys) -> None:
    code, out, _ = run(capsys, "measure", str(SPECS_DIR / "resnet443-se.toml"), "--no-latency")
    assert code == 0
    assert re.search(r"\| resnet443-se \| resnet18 +\| 11,173,962 +\| 11,173,962 +\| exact", out)
    assert "FLOPs = 2 x MACs" in out


def test_measure_unknown_variant(capsys) -> None:
    code, _, err = run(capsys, "measure", str(SPECS_DIR / "dmsresnet.toml"), "--variant", "techer")
    assert code == 2
    assert "variants: no variant 'techer' (did you mean teacher?)" in err


def test_table_renders_every_report_without_results(capsys, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(REPO)
    (tmp_path / "none").mkdir()
    code, out, _ = run(capsys, "table", "--results", str(tmp_path / "none"))
    assert code == 0
    reports, references = out.split("## Reference networks (not among the five reports)")
    for name in ("dmsresnet", "resnet443-se", "se-resnet3343", "resnet10", "resnet4323-se"):
        assert f"### {name} (" in reports
    assert "### wrn-16-4 (" in references and "### preact-resnet18 (" in references
    code, out, _ = run(capsys, "table", "--results", str(tmp_path / "none"), "--wide")
    assert "96.14% (abstract; table 1 (Validation Acc.); results text; cifar10-test; last-epoch)" in out
    reports, references = out.split("## Reference networks (not among the five reports)")
    assert "| wrn-16-4 " in references and "| preact-resnet18 " in references and "| wrn-16-4 " not in reports

    code, out, _ = run(capsys, "table", "--results", str(tmp_path), "--format", "json")
    rows = json.loads(out)
    assert {r["report"] for r in rows if r["section"] == "reports"} == {
        "dmsresnet",
        "resnet443-se",
        "se-resnet3343",
        "resnet10",
        "resnet4323-se",
    }
    assert {r["report"] for r in rows if r["section"] == "references"} == {"preact-resnet18", "wrn-16-4"}
    assert all(r["n_seeds"] == 0 and r["test_acc_mean"] is None for r in rows)

    code, out, _ = run(capsys, "table", "--results", str(tmp_path), "--format", "csv")
    parsed = list(csv.DictReader(io.StringIO(out)))
    # The CSV is the JSON's table cell for cell, not just as many rows: the same columns in the same order, the
    # rows in the same order, each scalar the same. Catches a CSV written from another frame (unsorted, filtered
    # or with a column dropped or shifted) and a cell written in another form (an int as 52.0, None as "None").
    assert len(parsed) == len(rows)
    for got, want in zip(parsed, rows, strict=True):
        assert list(got) == list(want)
        for key, value in want.items():
            if value is None:
                assert got[key] == "", key
            elif isinstance(value, str | bool | int):
                assert got[key] == str(value), key
            elif isinstance(value, float):
                assert float(got[key]) == value, key


def test_table_shows_results_and_warns_about_unreadable_files(capsys, tmp_path: Path, monkeypatch) -> None:
    from tests.records import record_json

    monkeypatch.chdir(REPO)
    for seed, acc, epochs, given in (
        (0, 90.0, 1, {}),
        (1, 92.0, 1, {}),
        (2, 50.0, 1, {"spec_hash": "0" * 16}),  # another recipe: stale
        (3, 70.0, 7, {}),  # a bigger budget: stronger evidence than the 1-epoch runs
    ):
        record = record_json("resnet10", "resnet12-grid", seed, acc, epochs=epochs, train_images=64, **given)
        (tmp_path / f"r{seed}.json").write_text(json.dumps(record))
    (tmp_path / "broken.json").write_text("{not json")
    code, out, err = run(capsys, "table", "--results", str(tmp_path), "--format", "json")
    assert code == 0
    row = next(r for r in json.loads(out) if r["variant"] == "resnet12-grid")
    assert row["n_seeds"] == 1 and row["epochs"] == 7 and row["n_stale"] == 0  # the stale run is of the 1-epoch cohort
    assert row["verdict"] == "not run at full budget" and row["budget"] == "reduced"
    assert "broken.json: skipped, not a readable JSON record" in err
    (tmp_path / "r3.json").unlink()
    code, out, err = run(capsys, "table", "--results", str(tmp_path), "--format", "json")
    row = next(r for r in json.loads(out) if r["variant"] == "resnet12-grid")
    assert row["n_seeds"] == 2 and row["test_acc_mean"] == pytest.approx(91.0) and row["n_stale"] == 1  # now shown
    assert row["test_acc_std"] == pytest.approx(1.4142, rel=1e-3)


def test_bad_arguments_get_one_line_and_status_2(capsys) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["table", "--format", "html"])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "invalid choice: 'html'" in err


def test_console_script_has_no_traceback_on_bad_spec(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[report]\nid = 7\n")
    harness = Path(sys.executable).with_name("harness")
    result = subprocess.run(
        [str(harness), "check", str(bad)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"{bad}:report.id: Input should be a valid string (got 7)" in result.stderr


def test_a_reader_that_leaves_early_gets_no_traceback() -> None:
    # `harness audit ... | head -1`: more output than a pipe buffer holds, the reader gone after a line.
    specs = [str(p) for p in SPEC_FILES] * 3
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "audit", *specs],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().startswith(b"## ")
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141 and "Traceback" not in err


def test_a_run_in_a_fresh_clone_leaves_git_status_clean(jpeg_archive: Path, tmp_path: Path) -> None:
    # User runs go to the git-ignored runs/; the shipped results/ only changes when --results says so.
    clone = tmp_path / "clone"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "clone", "-q", str(REPO), str(clone)], check=True)
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    for name in listed:  # this working tree, committed in the clone: what CI's clean clone will hold
        if (REPO / name).is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            (clone / name).write_bytes((REPO / name).read_bytes())
    subprocess.run([*git, "add", "-A"], cwd=clone, check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "tree"], cwd=clone, check=True)
    argv = ["run", "reproductions/resnet10.toml", "--variant", "resnet12-grid", "--profile", "smoke", "--subset", "64"]
    done = subprocess.run(
        [sys.executable, "-m", "harness.cli", *argv, "--data", str(jpeg_archive), "--quiet"],
        cwd=clone,
        env={**os.environ, "PYTHONPATH": str(clone)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert list(clone.glob("runs/resnet10/resnet12-grid/*.json"))
    status = subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True, check=True)
    assert status.stdout == ""
