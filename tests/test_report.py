"""`harness report`: the reproduction study in three formats, its HTML page rendered by a real browser,
and time to a target read from validation accuracy only."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.cli import main
from harness.results.target import time_to_target
from tests.conftest import REPO, SPECS_DIR

SHIPPED = REPO / "results"
RECORD = SHIPPED / "resnet10/resnet12-grid/full-e70-nall-seed0-95c4031ca9a9.json"  # the committed 70-epoch run
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NEEDS_CHROMIUM = pytest.mark.skipif(
    CHROMIUM is None and os.environ.get("HARNESS_REQUIRE_CHROMIUM") != "1",
    reason="no chromium here (.ci/run installs Debian's; CI sets HARNESS_REQUIRE_CHROMIUM=1 so this never skips)",
)


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("studies")
    args = ["report", str(SPECS_DIR / "resnet10.toml"), "--results", str(SHIPPED), "--out", str(out), "--no-latency"]
    assert main(args) == 0
    return out / "resnet10"


def test_the_study_is_written_in_three_formats_from_the_committed_record(study: Path) -> None:
    record = json.loads(RECORD.read_text())
    assert sorted(p.name for p in study.iterdir()) == [
        "claims.tex",
        "plots",
        "references.bib",
        "study.html",
        "study.md",
    ]
    markdown = study.joinpath("study.md").read_text()
    assert f"{record['test_acc']:.2f}" in markdown and record["git"]["commit"][:10] in markdown
    assert "Not the official CIFAR-10 result" in markdown  # the record is on the JPEG copy
    assert f"results/resnet10/resnet12-grid/{RECORD.name}`" in markdown  # the file it was read from, not
    assert record["record_path"] not in markdown  # where it was written (another clone's folder)
    claims = [line for line in markdown.splitlines() if line.startswith("| resnet12-acc |")]
    assert claims and all("full budget, but not on the official CIFAR-10 pixels" in line for line in claims[:1])
    assert not re.search(r"\| (reproduced|below claim|above claim) \|", markdown)  # no verdict on these pixels
    assert "| Pre-trained models | yes | resnet_model_93.54.ckpt" in markdown  # the release checklist
    assert "![curves_resnet10_resnet12-grid_full-e70-nall](plots/curves_resnet10_resnet12-grid_full-e70-nall.png)" in (
        markdown
    )


def test_the_latex_table_escapes_and_the_bibtex_names_the_report(study: Path) -> None:
    tex = study.joinpath("claims.tex").read_text()
    assert tex.count(r"\begin{tabular}") == tex.count(r"\end{tabular}") == 1
    assert r"resnet12-acc & resnet12-grid & cifar10-test & best-val & 89.03 & 85.16 ($n=1$)" in tex
    body = tex[tex.index(r"\midrule") : tex.index(r"\bottomrule")]
    assert "_" not in body.replace(r"\_", "")  # every underscore escaped
    assert r"\citet{report003}" in tex
    bib = study.joinpath("references.bib").read_text()
    assert (
        bib.startswith("@misc{report003,") and "author = {Arushi Arora and Saaketh Koundinya and Shreya Agarwal}" in bib
    )


def test_latex_text_escapes_every_special_character() -> None:
    from harness.report.render import latex

    assert latex("a_b & 50% #1 $x$ {y} ~^" + "\\") == (
        r"a\_b \& 50\% \#1 \$x\$ \{y\} \textasciitilde{}\textasciicircum{}\textbackslash{}"
    )


def test_the_page_is_self_contained(study: Path) -> None:
    page = study.joinpath("study.html").read_text()
    sources = re.findall(r'<img src="([^"]*)"', page)
    assert len(sources) == 4 and all(s.startswith("data:image/png;base64,") for s in sources)  # 1 curve, 3 fronts
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=", page)  # no file, no network


def test_time_to_target_reads_validation_never_test() -> None:
    history = [
        {"epoch": 0, "val_acc": 50.0, "test_acc_monitor": 95.0, "seconds": 10.0},  # the test set passes early
        {"epoch": 1, "val_acc": 89.1, "test_acc_monitor": 96.0, "seconds": 20.0},
        {"epoch": 2, "val_acc": 90.0, "seconds": 30.0},
    ]
    found = time_to_target(history, 89.03)
    assert found["reached"] and found["epoch"] == 2 and found["device_hours"] == pytest.approx(30.0 / 3600)
    missed = time_to_target(history, 95.0)
    assert not missed["reached"] and missed["best_val"] == 90.0 and missed["best_epoch"] == 3


def test_the_committed_run_never_reached_its_claim_on_validation() -> None:
    record = json.loads(RECORD.read_text())
    best = max(h["val_acc"] for h in record["history"])
    found = time_to_target(record["history"], 89.03)
    assert not found["reached"] and found["best_val"] == best < 89.03
    reached = time_to_target(record["history"], 80.0)
    first = next(h for h in record["history"] if h["val_acc"] >= 80.0)
    hours = sum(h["seconds"] for h in record["history"][: first["epoch"] + 1]) / 3600
    assert reached["epoch"] == first["epoch"] + 1 and reached["device_hours"] == pytest.approx(hours)


def test_the_table_json_has_time_to_target_and_speed_conditions(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["table", "--specs", str(SPECS_DIR / "resnet10.toml"), "--results", str(SHIPPED), "--format", "json"]
    assert main([*args, "--no-latency"]) == 0
    row = next(r for r in json.loads(capsys.readouterr().out) if r["variant"] == "resnet12-grid")
    assert row["target_val_acc"] == 89.03 and row["target_reached"] == "0/1" and row["target_epoch"] is None
    assert row["train_speed_conditions"].startswith("fp32, channels_last, eager, torch 2.14.1")
    assert main([*args[:-2], "--format", "csv", "--no-latency"]) == 0
    assert "seed 0: not reached" in capsys.readouterr().out


def _chromium(page: Path, tmp_path: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    command = [CHROMIUM or "chromium", "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path}"]
    return subprocess.run(
        [*command, "--virtual-time-budget=5000", *flags], capture_output=True, text=True, timeout=180, check=True
    )


def _leaderboard_keys(dom: str, column: int) -> list[str]:
    table = dom[dom.index('id="leaderboard"') :]
    table = table[: table.index("</table>")]
    rows = [re.findall(r'data-key="([^"]*)"', row) for row in re.findall(r"<tr>(.*?)</tr>", table, re.DOTALL)]
    return [row[column] for row in rows if row]


@NEEDS_CHROMIUM
def test_the_page_renders_in_headless_chromium_and_sorts(study: Path, tmp_path: Path) -> None:
    page = study / "study.html"
    as_written = _leaderboard_keys(page.read_text(), 6)  # column 6: params, in the spec's order
    dom = _chromium(page, tmp_path, "--dump-dom", f"{page.as_uri()}#sort=-params").stdout
    assert re.search(r'data-images-drawn="4"', dom)  # every plot decoded and drawn
    assert re.search(r'data-leaderboard-rows="10"', dom)  # resnet10.toml's ten variants
    params = [int(key) for key in _leaderboard_keys(dom, 6)]
    assert params == sorted(params, reverse=True) and params != [int(k) for k in as_written]
    shot = tmp_path / "page.png"
    _chromium(page, tmp_path, f"--screenshot={shot}", "--window-size=1200,2400", page.as_uri())
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape == (2400, 1200, 3) and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 100  # drawn, not blank


@NEEDS_CHROMIUM
def test_with_all_the_leaderboard_lists_every_report(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["report", "--all", "--results", str(SHIPPED), "--out", str(out), "--no-latency"]) == 0
    specs = [p for p in SPECS_DIR.glob("*.toml") if p.name != "common.toml"] + list(SPECS_DIR.glob("references/*.toml"))
    variants = sum(len(re.findall(r"^\[variants\.[^.\]]+\]$", p.read_text(), re.MULTILINE)) for p in specs)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        p.stem for p in SPECS_DIR.glob("*.toml") if p.name != "common.toml"
    )
    dom = _chromium(
        out / "dmsresnet" / "study.html",
        tmp_path / "profile",
        "--dump-dom",
        (out / "dmsresnet" / "study.html").as_uri(),
    ).stdout
    assert re.search(rf'data-leaderboard-rows="{variants}"', dom)


def test_spec_text_is_escaped_in_the_page_and_the_markdown_table(tmp_path: Path) -> None:
    spec = tmp_path / "resnet10.toml"
    spec.write_text((SPECS_DIR / "resnet10.toml").read_text().replace('text = "89.03%"', 'text = "89.03% <b>|&"', 1))
    args = ["report", str(spec), "--specs", str(spec), "--results", str(SHIPPED), "--out", str(tmp_path / "out")]
    assert main([*args, "--no-latency"]) == 0
    page = (tmp_path / "out/resnet10/study.html").read_text()
    assert "89.03% &lt;b&gt;|&amp;" in page and "<b>|" not in page
    markdown = (tmp_path / "out/resnet10/study.md").read_text()
    assert '| "89.03% <b>\\|&" |' in markdown  # the pipe cannot end the cell


def test_a_mistyped_results_folder_is_named_in_a_warning(tmp_path: Path, capsys) -> None:
    argv = ["report", str(SPECS_DIR / "resnet10.toml"), "--results", str(tmp_path / "typo"), "--out", str(tmp_path)]
    assert main([*argv, "--no-latency"]) == 0  # as a README example reads runs/demo before make demo made it
    assert f"harness: warning: {tmp_path / 'typo'}: no such folder of result records" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["report"], "name the report specs"),
        (["report", str(SPECS_DIR / "common.toml")], "a protocol file, not a report spec"),
        (["report", "no-such.toml"], "no-such.toml"),
    ],
)
def test_bad_report_requests_get_one_line(argv: list[str], message: str, capsys, tmp_path: Path) -> None:
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and not (tmp_path / "out").exists()
