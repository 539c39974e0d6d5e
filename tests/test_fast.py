"""Commands that answer at once: help, usage errors, specs and the leaderboard never load PyTorch, and
the counts and timings a table shows come from a cache that a change of the model code invalidates."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.measure import size
from harness.models.blocks import BLOCKS
from harness.models.config import EXPANSION
from harness.spec import load_spec
from tests.conftest import REPO, SPEC_FILES, SPECS_DIR

HEAVY = ("torch", "torchvision", "timm", "fvcore", "scipy", "pandas", "matplotlib")

PROBE = """
import sys
from harness.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as stop:  # --help
    code = stop.code
heavy = [m for m in {heavy} if m in sys.modules]
print("HEAVY=" + ",".join(heavy), file=sys.stderr)
raise SystemExit(code)
"""


def loaded_modules(argv: list[str], cache: Path) -> tuple[int, list[str], str]:
    """(exit status, heavy modules imported, stdout) of `harness ARGV` in a fresh interpreter."""
    env = {"HARNESS_CACHE": str(cache), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    line = next(x for x in done.stderr.splitlines() if x.startswith("HEAVY="))
    return done.returncode, [m for m in line.removeprefix("HEAVY=").split(",") if m], done.stdout


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["run", "--help"],
        ["tabel"],
        ["check", "reproductions/resnet10.toml"],
        ["compare", "resnet10/resnet12-grid", "dmsresnet/as-coded"],
    ],
)
def test_help_usage_errors_and_spec_commands_load_no_heavy_library(argv: list[str], tmp_path: Path) -> None:
    code, heavy, _ = loaded_modules(argv, tmp_path)
    assert code in (0, 2) and heavy == [], f"{argv} imported {heavy}"


def test_a_warm_table_loads_no_heavy_library_and_fits_120_columns(tmp_path: Path) -> None:
    (tmp_path / "none").mkdir()
    argv = ["table", "--results", str(tmp_path / "none")]
    code, _, _ = loaded_modules(argv, tmp_path / "cache")  # the first table counts every network once
    assert code == 0
    code, heavy, out = loaded_modules(argv, tmp_path / "cache")
    assert code == 0 and heavy == [] and max(map(len, out.splitlines())) <= 120
    assert json.loads((tmp_path / "cache" / "sizes.json").read_text())  # what the second table read
    # plan reads the same counts: with them cached it never loads PyTorch (scipy gives its power figures)
    code, heavy, _ = loaded_modules(["plan", *map(str, SPEC_FILES)], tmp_path / "cache")
    assert code == 0 and not {"torch", "torchvision", "fvcore"} & set(heavy), heavy


def test_sizes_are_counted_once_per_config_and_again_when_the_model_code_changes(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    model = load_spec(SPECS_DIR / "resnet10.toml").variant("resnet12-grid").recipe.model
    counted = []
    real = size.count_size

    def counting(cfg: object) -> size.Size:
        counted.append(cfg)
        return real(cfg)

    monkeypatch.setattr(size, "count_size", counting)
    for _ in range(2):
        size.size_of.cache_clear()  # a new process: only the file cache remains
        assert size.size_of(model).params == 195_738
    assert len(counted) == 1
    size.size_of.cache_clear()
    monkeypatch.setattr(size, "_code_hash", lambda: "edited builder")
    assert size.size_of(model).params == 195_738 and len(counted) == 2
    size.size_of.cache_clear()


def test_the_configs_block_expansions_are_the_blocks_own() -> None:
    assert EXPANSION == {name: block.expansion for name, block in BLOCKS.items()}


def test_a_run_whose_ops_and_network_need_neither_torchvision_nor_timm_never_loads_them(
    jpeg_archive: Path, tmp_path: Path
) -> None:
    # Half of a run's start is importing torchvision and timm (about 2.5 of 5 s): a recipe whose ops and
    # network use neither never loads them, and its record still names their exact versions.
    import os

    import timm
    import torchvision

    results = tmp_path / "runs"
    argv = ["run", str(SPECS_DIR / "resnet10.toml"), "--variant", "resnet12-grid", "--profile", "smoke"]
    argv += ["--subset", "64", "--data", str(jpeg_archive), "--results", str(results), "--device", "cpu"]
    code, heavy, _ = loaded_modules(argv, Path(os.environ["HARNESS_CACHE"]))  # the session's decoded archive
    assert code == 0 and "torch" in heavy and not {"torchvision", "timm"} & set(heavy), heavy
    (record,) = results.glob("resnet10/resnet12-grid/*.json")
    used = json.loads(record.read_text())["versions"]
    assert (used["torchvision"], used["timm"]) == (torchvision.__version__, timm.__version__)
