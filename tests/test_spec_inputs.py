"""What specs a command reads: web addresses are http(s) only, one spec file per report, and a spec named
on the command line takes the place of the shipped spec of its report instead of doubling its rows."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import pytest

from harness.cli import main
from harness.results.dataframe import default_spec_paths
from harness.spec import load_specs
from tests.conftest import SPECS_DIR

RESNET10 = SPECS_DIR / "resnet10.toml"
CODE_URL = 'code_url = "https://github.com/shreya1313/Modified-ResNet10"'
EXPECTED = "expected an absolute http:// or https:// address with a host, without spaces, braces or backslashes"


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return code, out, err


def with_address(spec_copy: Any, key: str, address: str) -> Path:
    text = RESNET10.read_text(encoding="utf-8")
    assert CODE_URL in text, "test set-up: the spec's code_url changed"
    return spec_copy(text.replace(CODE_URL, f'{key} = "{address}"', 1), name="resnet10.toml")


@pytest.mark.parametrize("key", ["url", "code_url"])
@pytest.mark.parametrize(
    "address",
    ["javascript:alert(1)", "data:text/html,<script>x</script>", "file:///etc/passwd", "x/y", "http://", "https://"],
)
def test_check_refuses_an_address_that_is_not_http_or_https(capsys, spec_copy, key: str, address: str) -> None:
    path = with_address(spec_copy, key, address)
    code, out, err = run(capsys, "check", path)
    assert (code, out) == (2, "")
    assert err == f"{path}:report.{key}: {EXPECTED} (got {address!r})\n"


@pytest.mark.parametrize("address", ["", "http://example.org", "https://arxiv.org/abs/1605.07146v4#page=2"])
def test_check_accepts_http_and_https_addresses(capsys, spec_copy, address: str) -> None:
    path = with_address(spec_copy, "code_url", address)
    code, out, err = run(capsys, "check", path)
    assert (code, err) == (0, "") and out.startswith(f"{path}: ok (")


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """A copy of the shipped resnet10 spec in another folder: the same report, another file."""
    path = tmp_path / "other" / "resnet10.toml"
    path.parent.mkdir()
    path.write_text(RESNET10.read_text(encoding="utf-8"), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "command",
    [
        ["report", "{shipped}", "{copy}"],
        ["report", "{copy}", "--specs", "{shipped}"],
        ["table", "--no-latency", "--specs", "{shipped}", "{copy}"],
        ["plot", "--no-latency", "--out", "{out}", "--specs", "{shipped}", "{copy}"],
        ["compare", "resnet10/resnet10-grid", "resnet10/resnet12-grid", "--specs", "{shipped}", "{copy}"],
    ],
    ids=["report", "report-and-specs", "table", "plot", "compare"],
)
def test_two_spec_files_of_one_report_are_an_error_naming_both(capsys, copy, tmp_path, command) -> None:
    fill = {"shipped": str(RESNET10), "copy": str(copy), "out": str(tmp_path / "out")}
    argv = [part.format(**fill) for part in command]
    if argv[0] == "report":
        argv += ["--out", fill["out"], "--no-latency"]
    code, out, err = run(capsys, *argv, "--results", tmp_path)
    assert (code, out) == (2, "")
    assert err == (
        f'{copy}:report.name: report "resnet10" is also the report of {RESNET10}; '
        "expected one spec file per report (its rows would count twice)\n"
    )
    assert not (tmp_path / "out").exists()  # nothing written


@pytest.fixture
def leaderboard(monkeypatch) -> list[dict[str, Any]]:
    """What `harness report` writes, caught instead of rendered: the study's spec, leaderboard and listed rows.

    The leaderboard has one row per report and variant, the variant's name only (no sizes to count)."""
    import harness.results.table

    written: list[dict[str, Any]] = []

    def rows(specs: list[Any], *_: Any, **__: Any) -> list[dict[str, Any]]:
        return [{"report": spec.name, "variant": name, "path": spec.path} for spec in specs for name in spec.variants]

    def write_report(spec: Any, board: list[dict[str, Any]], records: Any, out: Path, listed: Any) -> list[Path]:
        written.append({"spec": spec, "board": board, "listed": listed})
        return []

    monkeypatch.setattr(harness.results.table, "rows", rows)
    monkeypatch.setitem(sys.modules, "harness.report.render", types.SimpleNamespace(write_report=write_report, board_of=lambda specs, listed: listed))
    return written


def test_a_spec_named_on_the_command_line_replaces_the_shipped_one(capsys, copy, tmp_path, leaderboard) -> None:
    shipped, _ = load_specs(default_spec_paths())
    code, _, err = run(capsys, "report", copy, "--results", tmp_path, "--out", tmp_path / "out", "--no-latency")
    assert code == 0
    (study,) = leaderboard
    assert study["spec"].path == copy
    assert len(study["board"]) == sum(len(spec.variants) for spec in shipped)  # every row once
    assert {row["path"] for row in study["listed"]} == {copy}
    (replaced,) = [path for path in default_spec_paths() if path.resolve() == RESNET10]
    note = f'harness: note: {copy} replaces {replaced} (same report "resnet10")\n'
    assert err.count("harness: note:") == 1 and note in err


def test_naming_a_shipped_spec_reads_it_once_without_a_note(capsys, tmp_path, leaderboard) -> None:
    code, _, err = run(capsys, "report", RESNET10, "--results", tmp_path, "--out", tmp_path / "out", "--no-latency")
    assert code == 0 and "note" not in err
    (study,) = leaderboard
    assert len(study["listed"]) == len(study["spec"].variants)
