"""The leaderboard, plots and comparisons from a folder of records: verdicts, formats and statistics."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from harness.cli import main
from harness.spec import load_protocol, load_specs, with_protocol
from tests.conftest import COMMON, REPO, SPEC_FILES

SPECS = {s.name: s for s in load_specs(SPEC_FILES)[0]}


def record(
    report: str,
    variant: str,
    seed: int,
    acc: float,
    *,
    profile: str = "full",
    protocol: str = "own",
    official: bool = True,
    epochs: int | None = None,
) -> dict:
    spec = SPECS[report]
    v = spec.variant(variant)
    if protocol == "common":
        v = with_protocol(spec, v, load_protocol(COMMON))
    return {
        "schema": "harness.result/1",
        "report": report,
        "variant": variant,
        "seed": seed,
        "profile": profile,
        "protocol": protocol,
        "status": "complete",
        "spec_hash": v.spec_hash,
        "test_acc": acc,
        "is_reproduction": profile == "full" and official and protocol == "own",
        "data_source": "cifar10" if official else "jpeg copy (not the official CIFAR-10 pixels)",
        "budget": {"epochs": epochs or v.recipe.train.epochs, "train_images": 45_000},
        "device_hours": 2.0,
        "device": {"name": "NVIDIA H100"},
        "report_rule": {"value": acc + 0.3},
        "robustness": {"mean": acc - 20},
        "history": [{"epoch": e, "train_loss": 2.0 / (e + 1), "val_acc": acc - 5 + e} for e in range(3)],
    }


def write(folder: Path, records: list[dict]) -> Path:
    for i, r in enumerate(records):
        (folder / f"{r['report']}-{r['variant']}-{r['protocol']}-{i}.json").write_text(json.dumps(r))
    return folder


def table(capsys, folder: Path, *extra: str) -> list[dict]:
    assert main(["table", "--results", str(folder), "--format", "json", "--no-latency", *extra]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def results(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.chdir(REPO)
    return write(
        tmp_path,
        [record("dmsresnet", "as-coded", s, a) for s, a in enumerate((96.0, 96.2, 96.1))]
        + [record("resnet4323-se", "as-coded", s, a) for s, a in enumerate((95.0, 95.1, 95.2))]
        + [
            record("resnet10", "resnet10-onecycle", 0, 93.4),
            record("se-resnet3343", "as-coded", 0, 80.0, profile="short", epochs=30),
            record("resnet443-se", "as-coded", 0, 85.0, official=False),
        ]
        + [record("dmsresnet", "as-coded", s, a, protocol="common") for s, a in enumerate((95.0, 95.4, 95.2))],
    )


def test_verdicts_statistics_and_the_common_column(capsys, results: Path) -> None:
    rows = {(r["report"], r["variant"]): r for r in table(capsys, results)}
    dms = rows[("dmsresnet", "as-coded")]
    assert (dms["n_seeds"], dms["verdict"]) == (3, "reproduced")
    assert dms["test_acc_mean"] == pytest.approx(96.1) and dms["ci95"][0] < 96.14 < dms["ci95"][1]
    assert dms["delta"] == pytest.approx(96.1 - 96.14)
    assert dms["common_n_seeds"] == 3 and dms["common_test_acc_mean"] == pytest.approx(95.2)
    assert dms["report_rule_acc_mean"] == pytest.approx(96.4) and dms["corrupted_acc_mean"] == pytest.approx(76.1)
    assert dms["device_hours_mean"] == 2.0 and dms["flags"] == [
        "test-selection",
        "no-val",
        "inconsistent",
        "code-differs",
    ]
    assert rows[("dmsresnet", "as-written")]["verdict"] == "not run"
    assert rows[("resnet4323-se", "as-coded")]["verdict"] == "below claim"  # 95.1 against 97.0
    assert rows[("resnet10", "resnet10-onecycle")]["verdict"] == "reproduced (1 seed)"
    assert rows[("se-resnet3343", "as-coded")]["verdict"] == "not run at full budget"
    assert rows[("resnet443-se", "as-coded")]["verdict"] == "not run at full budget"  # not the official pixels
    assert rows[("dmsresnet", "teacher")]["verdict"] == "not run"
    for row in rows.values():
        assert {
            "report",
            "variant",
            "claims",
            "n_seeds",
            "test_acc_mean",
            "test_acc_std",
            "ci95",
            "verdict",
            "params",
            "macs",
            "profile",
            "data_source",
            "flags",
        } <= set(row)


def test_markdown_and_csv(capsys, results: Path) -> None:
    assert main(["table", "--results", str(results), "--no-latency"]) == 0
    out = capsys.readouterr().out
    assert "96.10 ± 0.10 (n=3)" in out and "reproduced" in out and "TVIC" in out
    assert "Flags: T = test-selection:" in out
    assert main(["table", "--results", str(results), "--no-latency", "--format", "csv"]) == 0
    parsed = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    row = next(r for r in parsed if (r["report"], r["variant"]) == ("dmsresnet", "as-coded"))
    assert row["verdict"] == "reproduced" and "96.14% (abstract/" in row["claims"]


def test_latency_columns_are_measured_once_and_cached(capsys, results: Path, monkeypatch) -> None:
    args = ["table", "--results", str(results), "--format", "json", "--specs", str(SPEC_FILES[-1])]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert all(r["cpu_latency_ms_b1"] > 0 for r in first)

    def no_timing(*_: object, **__: object) -> None:
        raise AssertionError("timed again instead of reading the cache")

    monkeypatch.setattr("harness.measure.time_model", no_timing)
    assert main(args) == 0
    assert [r["cpu_latency_ms_b1"] for r in json.loads(capsys.readouterr().out)] == [
        r["cpu_latency_ms_b1"] for r in first
    ]


def test_plots_are_written(capsys, results: Path, tmp_path: Path) -> None:
    out = tmp_path / "plots"
    assert main(["plot", "--results", str(results), "--out", str(out), "--no-latency"]) == 0
    names = sorted(p.name for p in out.glob("*.png"))
    assert {"pareto_params.png", "pareto_macs.png", "pareto_latency.png"} <= set(names)
    # own and common-protocol runs of one variant are separate figures: their curves do not compare
    assert {"curves_dmsresnet_as-coded_full.png", "curves_dmsresnet_as-coded_common-full.png"} <= set(names)
    for path in out.glob("*.png"):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def test_compare_two_entries(capsys, results: Path) -> None:
    assert main(["compare", "dmsresnet/as-coded", "resnet4323-se/as-coded", "--results", str(results), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    from scipy import stats

    assert out["p_value"] == pytest.approx(
        stats.ttest_ind([96.0, 96.2, 96.1], [95.0, 95.1, 95.2], equal_var=False).pvalue
    )
    assert out["difference"] == pytest.approx(1.0) and out["n_a"] == out["n_b"] == 3
    assert (out["profile"], out["epochs"], out["train_images"]) == ("full", None, None)  # each recipe's own
    assert (
        main(["compare", "dmsresnet/as-coded", "dmsresnet/as-coded", "--results", str(results), "--protocol", "common"])
        == 0
    )
    text = capsys.readouterr().out
    assert "p = 1" in text and "(full budget; " in text


@pytest.mark.parametrize(
    ("a", "b", "message"),
    [
        ("dmsresnet/as-coded", "resnet10/resnet10-onecycle", "resnet10/resnet10-onecycle: 1 finished seed(s)"),
        ("nope/x", "dmsresnet/as-coded", "expected REPORT/VARIANT"),
        ("dmsresnet/as-codd", "dmsresnet/as-coded", "no variant 'as-codd'"),
    ],
)
def test_compare_refuses_what_it_cannot_test(capsys, results: Path, a: str, b: str, message: str) -> None:
    assert main(["compare", a, b, "--results", str(results)]) == 2
    assert message in capsys.readouterr().err


def test_audit_command(capsys) -> None:
    assert main(["audit", str(SPEC_FILES[0]), "--variant", "as-coded"]) == 0
    out = capsys.readouterr().out
    assert "[T] test-selection" in out and "[C] code-differs" in out
    assert "claim params: 4,697,742 parameters" in out and "deviation [code-differs] train.lookahead" in out


def test_a_latency_timed_on_a_busy_machine_is_marked(monkeypatch) -> None:
    from harness import table as leaderboard
    from harness.measure import Timing

    busy = Timing("cpu", 2, 50.0, 60.0, None, 20, 0, other_cpu_use=0.8, busy=True)
    monkeypatch.setattr(leaderboard, "cached_timing", lambda cfg, device: busy)
    text = leaderboard.render(leaderboard.rows([SPECS["resnet10"]], []), "markdown")
    import re

    assert (
        re.search(r"\| 50\.00\* +\|", text)
        and "* CPU latency measured while other processes were using the CPUs" in text
    )
