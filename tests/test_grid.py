"""Grids (spec `[grids.NAME]`): report 003's grid search as 45 runnable variants, every claim runnable.

The expected names come from gridsearch.py's own lists and from Appendix Table 4 of the report, not from the
expansion; the pinned hashes were printed by load_spec before grids existed.
"""

from __future__ import annotations

import itertools
import re
import tomllib
from pathlib import Path

import pytest

from harness.cli import main
from harness.spec import load_spec
from tests.conftest import RECORDED_DATA, REFERENCE_FILES, REPO, SPEC_FILES, SPECS_DIR, with_data
from tests.test_spec import edited, problems_of

R10 = SPECS_DIR / "resnet10.toml"
SEED_003 = next(iter((REPO.parent / "shared" / "seeds").glob("003_*.txt")), None)

# gridsearch.py: `learning_rate = [0.1, 0.01, 0.001]`, `optimizers = ['Adam', 'SGD', 'AdaDelta']`, and five models
# (ResNet10, ResNet18, ResNet12, ResNet14_4, ResNet14_5), each run 70 epochs; Table 4 spells 14_4 as resnet14_4.
MODELS = ("resnet10", "resnet12", "resnet14-4", "resnet14-5", "resnet18")
OPTIMIZERS = ("sgd", "adam", "adadelta")
RATES = ("0.1", "0.01", "0.001")
# The Table 3 cells, hand-written before grids existed, under the names records are filed by.
NAMED = {
    ("resnet10", "sgd", "0.1"): "resnet10-grid",
    ("resnet12", "sgd", "0.1"): "resnet12-grid",
    ("resnet14-4", "adam", "0.01"): "resnet14-4-grid",
    ("resnet14-5", "sgd", "0.1"): "resnet14-5-grid",
    ("resnet18", "adam", "0.001"): "resnet18-grid",
}
# Their spec hashes before the grid was written, printed by load_spec under the normalisation the spec had then
# (the real record tests/data/results/resnet10/resnet12-grid/ is tied to 263653af9a427fa0).
PINNED_DATA = RECORDED_DATA
PINNED = {
    "resnet10-grid": "9ff02df3719b78fd",
    "resnet12-grid": "263653af9a427fa0",
    "resnet14-4-grid": "40bfae0406769ccf",
    "resnet14-5-grid": "b12bafa32f337e04",
    "resnet18-grid": "ba86371f2ccd9a15",
}


def test_the_grid_is_gridsearch_pys_45_runs_under_stable_names() -> None:
    spec = load_spec(R10)
    cells = {v.name: v for v in spec.variants.values() if v.grid == "table4"}
    expected = {NAMED.get(c, "-".join(c)) for c in itertools.product(MODELS, OPTIMIZERS, RATES)}
    assert len(expected) == 5 * 3 * 3 == 45
    assert set(cells) == expected
    for name, variant in cells.items():
        model, optimizer, rate = (value for _, value in variant.cell)
        assert NAMED.get((model, optimizer, rate), f"{model}-{optimizer}-{rate}") == name
        recipe = variant.recipe
        assert (recipe.train.optimizer.name, recipe.train.optimizer.lr) == (optimizer, float(rate))
        assert recipe.train.epochs == 70 and recipe.train.schedule.name == "step"
        assert recipe.train.schedule.step_size == 20 and recipe.train.schedule.gamma == pytest.approx(1 / 3)
        decay = {"sgd": 1e-4, "adam": 0.0, "adadelta": 1e-4}[optimizer]  # gridsearch.py's optim.* calls
        assert recipe.train.optimizer.weight_decay == decay
        assert getattr(recipe.train.optimizer, "momentum", 0.9) == 0.9
        assert variant.role == ("reference" if model == "resnet18" else "model")  # over the 5M budget
    hand = [n for n in spec.variants if spec.variants[n].grid is None]  # the spec's other [variants] tables
    assert len(spec.variants) == len(hand) + 45 and len(hand) == len(tomllib.loads(R10.read_text())["variants"]) - 5


@pytest.mark.skipif(SEED_003 is None, reason="../shared/seeds/003_*.txt (the report's text) is not beside the project")
def test_every_row_of_appendix_table_4_is_a_claim_on_its_own_cell() -> None:
    assert SEED_003 is not None
    rows = re.findall(r"^(resnet\S+)\t(\w+)\t([\d.]+)\t([\d.]+)$", SEED_003.read_text(encoding="utf-8"), re.MULTILINE)
    assert len(rows) == 45
    spec = load_spec(R10)
    for model, optimizer, rate, accuracy in rows:
        cell = (model.replace("_", "-"), optimizer.lower(), rate)
        name = NAMED.get(cell, "-".join(cell))
        (claim,) = [c for c in spec.claims if c.id == f"grid-{'-'.join(cell)}"]
        assert claim.variants == (name,) and claim.value == pytest.approx(float(accuracy) * 100)
        assert dict(spec.variants[name].cell) == {"model": cell[0], "optimizer": cell[1], "lr": cell[2]}
    # seed-facts.md: these two rows are mis-transcribed; each claim stays on the cell its row names, and says so
    for doctored in ("grid-resnet10-sgd-0.001", "grid-resnet10-adam-0.001"):
        assert next(c for c in spec.claims if c.id == doctored).note.startswith("Mis-transcribed")


def test_a_cell_is_the_variant_written_by_hand(spec_copy) -> None:
    hand = """
[variants.by-hand-14-4-sgd]
extends = "resnet14-4-grid"
train.optimizer = { name = "sgd", lr = 0.01, momentum = 0.9, weight_decay = 1e-4, weight_decay_on = "all" }

[variants.by-hand-18-adadelta]
extends = "resnet18-grid"
train.optimizer = { name = "adadelta", lr = 0.1, weight_decay = 1e-4 }
"""
    spec = load_spec(spec_copy(R10.read_text(encoding="utf-8") + hand))
    pairs = (("by-hand-14-4-sgd", "resnet14-4-sgd-0.01"), ("by-hand-18-adadelta", "resnet18-adadelta-0.1"))
    for by_hand, cell in pairs:
        assert spec.variants[by_hand].spec_hash == spec.variants[cell].spec_hash
        assert spec.variants[by_hand].recipe == spec.variants[cell].recipe
    # the cell inherits the deviations of the variant its model extends (ResNet-14-4's 3x3 shortcut, ...)
    assert {d.key for d in spec.variants["resnet14-4-grid"].deviations} <= {
        d.key for d in spec.variants["resnet14-4-sgd-0.01"].deviations
    }


def test_the_table_3_variants_keep_their_names_and_hashes(spec_copy) -> None:
    text = R10.read_text(encoding="utf-8")
    spec = load_spec(spec_copy(with_data(text, *PINNED_DATA)))
    assert {name: spec.variants[name].spec_hash for name in PINNED} == PINNED
    # and with the spec's own normalisation, the grid changes no hand-written variant's hash
    shipped = load_spec(R10)
    start, end = text.index("[grids.table4]"), text.index("# Appendix Table 4, one claim per row")
    cells = {"-".join(c) for c in itertools.product(MODELS, OPTIMIZERS, RATES)}
    without = re.sub(
        r'variants = \["([a-z0-9.-]+)"\]',
        lambda m: "variants = []" if m[1] in cells else m[0],
        text[:start] + text[end:],
    )
    alone = load_spec(spec_copy(without, "alone.toml"))
    assert all(v.grid is None for v in alone.variants.values()) and len(alone.variants) == len(shipped.variants) - 40
    assert {n: v.spec_hash for n, v in alone.variants.items()} == {
        n: shipped.variants[n].spec_hash for n in alone.variants
    }


def test_a_grids_deviations_reach_its_cells_explicit_ones_included(spec_copy) -> None:
    text = edited(
        R10.read_text(encoding="utf-8"),
        'name = "{model}-{optimizer}-{lr}"\n',
        'name = "{model}-{optimizer}-{lr}"\n'
        'deviations = [{ kind = "inferred", key = "train.optimizer", note = "from an earlier gridsearch.py" }]\n',
    )
    text = edited(
        text,
        'adadelta = { train.optimizer = { name = "adadelta", weight_decay = 1e-4 } }',
        'adadelta = { train.optimizer = { name = "adadelta", weight_decay = 1e-4 }, '
        'deviations = [{ kind = "unstated", key = "train.optimizer.rho", note = "PyTorch default" }] }',
    )
    spec = load_spec(spec_copy(text))
    keys = {name: [d.key for d in v.deviations] for name, v in spec.variants.items()}
    own = [d.key for d in load_spec(R10).variants["resnet12-grid"].deviations]
    assert keys["resnet12-adadelta-0.1"] == [*own, "train.optimizer", "train.optimizer.rho"]
    assert keys["resnet12-adam-0.1"] == [*own, "train.optimizer"]
    assert keys["resnet12-grid"] == [*own, "train.optimizer"]  # an explicit cell is the grid's cell too
    assert keys["resnet12-as-written"] == [d.key for d in load_spec(R10).variants["resnet12-as-written"].deviations]


@pytest.mark.parametrize("path", SPEC_FILES + REFERENCE_FILES, ids=[p.stem for p in SPEC_FILES + REFERENCE_FILES])
def test_every_accuracy_claim_names_a_variant_that_runs_it(path: Path) -> None:
    spec = load_spec(path)
    for claim in spec.claims:
        if claim.metric == "accuracy":
            assert claim.variants, f"{path.name}: claim {claim.id} names no variant"
            assert set(claim.variants) <= set(spec.variants), claim.id


GRID_ERRORS = {  # an edit of resnet10.toml's grid -> the one line it gives (after the file name)
    "template misses an axis": (
        'name = "{model}-{optimizer}-{lr}"',
        'name = "{model}-{optimizer}"',
        "grids.table4.name: no {lr}: cells that differ only in lr would share a name",
    ),
    "template names no axis": (
        'name = "{model}-{optimizer}-{lr}"',
        'name = "{model}-{optimiser}-{lr}"',
        "grids.table4.name: {optimiser} is not an axis (did you mean optimizer?); axes: model, optimizer, lr",
        "grids.table4.name: no {optimizer}: cells that differ only in optimizer would share a name",
    ),
    "two axes set one key": (
        '"0.01" = { train.optimizer.lr = 0.01 }',
        '"0.01" = { train.optimizer = { lr = 0.01, weight_decay = 0.0 } }',
        'grids.table4.axes.lr."0.01".train.optimizer.weight_decay: also set by grids.table4.axes.optimizer.sgd',
        'grids.table4.axes.lr."0.01".train.optimizer.weight_decay: also set by grids.table4.axes.optimizer.adam',
        'grids.table4.axes.lr."0.01".train.optimizer.weight_decay: also set by grids.table4.axes.optimizer.adadelta',
    ),
    "a bad value, reported once for its 15 cells": (
        '"0.001" = { train.optimizer.lr = 0.001 }',
        '"0.001" = { train.optimizer.lr = -0.001 }',
        'grids.table4.axes.lr."0.001".train.optimizer.lr: Input should be greater than 0 (got -0.001)',
    ),
    "an unknown recipe key": (
        'adam = { train.optimizer = { name = "adam", weight_decay = 0.0 } }',
        'adam = { train.optimizer = { name = "adam", weight_decay = 0.0, momentum = 0.9 } }',
        "grids.table4.axes.optimizer.adam.train.optimizer.momentum: unknown key",
    ),
    "an unknown base": (
        'base = "resnet10-grid"\nname',
        'base = "resnet10-gird"\nname',
        "grids.table4.base: no variant 'resnet10-gird' (did you mean resnet10-grid?)",
    ),
    "an explicit variant that is another cell": (
        '"resnet12-sgd-0.1" = "resnet12-grid"',
        '"resnet12-sgd-0.01" = "resnet12-grid"',
        (
            "grids.table4.explicit.\"resnet12-sgd-0.01\": variant 'resnet12-grid' is not this cell: "
            "its train.optimizer.lr is 0.1, the cell's 0.01"
        ),
    ),
    "a cell that is also a [variants] table": (
        "",  # appended
        '\n[variants."resnet10-adam-0.1"]\nextends = "resnet10-grid"\n',  # a dot: quoted, as in TOML
        (
            "grids.table4.name: cell 'resnet10-adam-0.1' is also a [variants] table: "
            "list it in explicit if that variant runs this cell"
        ),
    ),
    "an unknown key of the grid": (
        'base = "resnet10-grid"\nname',
        'bse = "resnet10-grid"\nname',
        "grids.table4.bse: unknown key (did you mean base?)",
    ),
}


@pytest.mark.parametrize("case", list(GRID_ERRORS))
def test_a_bad_grid_is_one_line_per_problem_naming_its_key(spec_copy, case: str) -> None:
    old, new, *expected = GRID_ERRORS[case]
    text = R10.read_text(encoding="utf-8")
    path = spec_copy(edited(text, old, new) if old else text + new)
    assert problems_of(path) == [f"{path}:{line}" for line in expected]  # no echo per cell, no claim left dangling


def _table_rows(capsys: pytest.CaptureFixture[str], *args: str) -> list[str]:
    assert main(["table", "--specs", str(R10), "--no-latency", *args]) == 0
    return [line.split("|")[1].strip() for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]


def test_the_compact_table_folds_a_grids_quiet_cells_into_one_row(capsys, tmp_path: Path, monkeypatch) -> None:
    from tests.records import record_json
    from tests.test_leaderboard import write

    monkeypatch.chdir(REPO)
    hand = list(tomllib.loads(R10.read_text(encoding="utf-8"))["variants"])  # the spec's [variants] tables
    empty = tmp_path / "empty"
    empty.mkdir()
    compact = _table_rows(capsys, "--results", str(empty))
    assert compact[1:] == [*[n + (" *" if n == "resnet10-onecycle" else "") for n in hand], "table4: 40 more cells"]
    assert len(_table_rows(capsys, "--results", str(empty), "--wide")) == 1 + len(hand) + 40  # every cell
    # a cell with a run is a row of its own: no result is hidden in the fold
    ran = write(tmp_path, [record_json("resnet10", "resnet14-5-adadelta-0.01", 0, 68.0)])
    compact = _table_rows(capsys, "--results", str(ran))
    assert "resnet14-5-adadelta-0.01" in compact and "table4: 39 more cells" in compact
    assert len(compact) == 1 + len(hand) + 2
    assert main(["table", "--specs", str(R10), "--no-latency", "--claims", "--results", str(empty)]) == 0
    claims = capsys.readouterr().out
    assert all(
        f"resnet10/{'-'.join(c)}" in claims for c in itertools.product(MODELS, OPTIMIZERS, RATES) if c not in NAMED
    )
