"""Every variant of every shipped spec trains at the smoke budget and records what its spec says: the recipe
that ran, the network, and the model the record scored (tests/test_train.py trains end to end)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pytest

from harness.common.events import Silent
from harness.data.cifar10 import TEST_SUBSET_SEED, subset_of
from harness.measure.evaluation import EvalRequest, evaluate_checkpoint
from harness.measure.size import size_of
from harness.results.record import SELECT_RULE, Record, unpack_mask
from harness.spec import load_spec, load_specs
from harness.train.loop import run
from harness.train.request import RunOptions
from tests.conftest import REFERENCE_FILES, SPEC_FILES, SPECS_DIR
from tests.test_train import Heard


def _variants() -> list[tuple[str, str]]:
    """Every variant written by hand, and of a grid's other cells enough that each axis value runs once: a
    cell is its axis values applied to a written variant (test_grid.py checks it equals that variant written
    by hand), so 40 more smoke runs of report 003's grid would test no other code path. Distillation teachers
    come first: their own tests train them into smoke_runs, where each student's test then finds them complete."""
    specs, _ = load_specs(SPEC_FILES + REFERENCE_FILES)
    teachers = {(t[0].path, t[1].name) for spec in specs for v in spec.variants.values() if (t := spec.teacher_of(v))}
    chosen, seen = [], set()
    for spec in specs:
        written = _written(spec)
        for name, variant in sorted(spec.variants.items(), key=lambda item: item[0] not in written):
            new = {(variant.grid, axis_value) for axis_value in variant.cell} - seen
            if name in written or new:
                seen |= new
                chosen.append((spec.path, name))
    chosen.sort(key=lambda chosen_one: chosen_one not in teachers)  # stable: the rest keep their order
    return [(str(path.relative_to(SPECS_DIR)), name) for path, name in chosen]


def _written(spec: object) -> set[str]:
    """The variants a spec file writes out in [variants.NAME] tables (grid cells are not among them)."""
    return set(tomllib.loads(spec.path.read_text(encoding="utf-8")).get("variants", {}))


def _flat(data: object, prefix: str = "") -> dict[str, object]:
    """A JSON tree as {dotted.key: leaf}, list items by index (train.phases.0.epochs)."""
    if isinstance(data, dict | list):
        items = data.items() if isinstance(data, dict) else enumerate(data)
        return {k: v for key, value in items for k, v in _flat(value, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): data}


SMOKE = {"profile": "smoke", "subset": 64, "device": "cpu"}  # the budget of smoke_runs
RESCORED = 64  # all of its test images: the subset's 64


@pytest.mark.parametrize(("spec_file", "variant"), _variants(), ids=[f"{Path(s).stem}/{v}" for s, v in _variants()])
def test_every_variant_runs_what_its_spec_says_and_records_it(
    jpeg_archive: Path, smoke_runs: Path, spec_file: str, variant: str
) -> None:
    # Not whether a 64-image epoch learns (it cannot), but equivalence: the recipe that ran is the spec's,
    # compressed to the budget; the network is the spec's; and the saved model is the one the record
    # scored (rescored from final.pt by `harness eval`, it gives the record's test accuracy).
    spec = load_spec(SPECS_DIR / spec_file)
    options = RunOptions(**SMOKE, data=str(jpeg_archive))
    heard = Heard()
    record = run(spec, variant, options, smoke_runs, heard)
    assert record.status == "complete" and record.is_reproduction is False
    # the estimate is said before a run (at this budget too short to time: tests/test_estimate.py), not before a
    # run found complete (a teacher, trained by its own test), and also before a teacher trained inside this test
    # (a student's test run alone)
    trained_here = not any(m.startswith(f"{spec.name}/{variant} ") and "already complete" in m for m in heard.messages)
    teacher_here = any(m.startswith("teacher: training ") for m in heard.messages)
    assert sum(m.startswith("estimate: ") for m in heard.messages) == trained_here + teacher_here, heard.messages
    # The file holds the whole record: a field to_json leaves out, or a value JSON gives back changed (a tuple,
    # an int key), reads back different.
    assert Record.from_json(json.loads(Path(record.record_path).read_text())) == record
    # The recipe that ran is the spec's cut to the budget, checked without compress (which wrote it): only
    # epoch counts and schedule horizons differ, each cut; the epochs are the budget's and the phases add up to
    # them; a horizon spanning the spec's whole run spans the budget's. Catches a compress that touches
    # anything else (lr, batch size), leaves a horizon or the phases uncut, and a record of the uncut recipe.
    expected = spec.variant(variant).recipe
    own, ran = _flat(expected.model_dump(mode="json")), _flat(record.recipe)
    epochs = record.budget["epochs"]
    assert epochs == ran["train.epochs"] == max(1, len(expected.train.phases))  # the smoke budget's
    changed = {k for k in own.keys() | ran.keys() if own.get(k) != ran.get(k)} - {"train.epochs"}
    if own.get("train.schedule.warmup_start_factor", 0) is None and "train.schedule.warmup_epochs" in changed:
        # a cut warm-up keeps the recipe's start, 1 / its own warm-up epochs, written out
        assert ran["train.schedule.warmup_start_factor"] == 1 / own["train.schedule.warmup_epochs"]
        changed.remove("train.schedule.warmup_start_factor")
    assert all(k.startswith(("train.schedule.", "train.phases.")) for k in changed), changed
    assert all(isinstance(ran.get(k), int) and 0 <= ran[k] < own[k] for k in changed), changed
    if expected.train.phases:
        assert sum(phase["epochs"] for phase in record.recipe["train"]["phases"]) == epochs
    if expected.train.schedule.step == "epoch":
        spans = [k for k, v in own.items() if k.startswith("train.schedule.") and v == expected.train.epochs]
        assert all(ran[k] == epochs for k in spans), spans
    assert (record.params, record.macs) == (size_of(expected.model).params, size_of(expected.model).macs)
    assert [h["epoch"] for h in record.history] == list(range(1, record.budget["epochs"] + 1))  # counted from 1
    # final.pt, rescored by `harness eval` on the first RESCORED of the run's test images (a prefix of the same
    # seeded draw), gets right the images the record says its selected model got right
    final = Path(record.checkpoint_dir) / "final.pt"
    request = EvalRequest(final, str(jpeg_archive), RESCORED, "cpu", corruptions=False)
    rescored = evaluate_checkpoint(request, Silent())
    tested = subset_of(np.arange(10_000), record.budget["test_images"], expected.data.val_seed + TEST_SUBSET_SEED)
    rescored_images = subset_of(np.arange(10_000), RESCORED, TEST_SUBSET_SEED)  # as harness eval draws them
    where = np.searchsorted(tested, rescored_images)
    assert np.array_equal(tested[where], rescored_images)  # among the run's test images
    rule = (
        SELECT_RULE[expected.eval.select] if SELECT_RULE[expected.eval.select] in record.test_correct else "last-epoch"
    )
    selected = unpack_mask(record.test_correct[rule], len(tested))[where]  # no best-val: the last epoch's model
    one_image = 100 / RESCORED  # another layout's float rounding may flip a near tie
    assert rescored["test_acc"] == pytest.approx(100 * selected.mean(), abs=one_image + 1e-9)
    assert rescored["spec_hash"] == record.spec_hash
    for rule, bits in record.test_correct.items():  # the per-image results behind each rule's figure
        correct = unpack_mask(bits, record.budget["test_images"])
        assert 100 * correct.sum() / len(correct) == pytest.approx(record.test_acc_by_rule[rule], abs=1e-9)
    assert set(record.test_correct) == {r for r in ("last-epoch", "best-val") if record.test_acc_by_rule[r] is not None}
    assert f"data: {record.data_source}" in record.deviations and "not the official" in record.data_source
    assert any(d.startswith(f"budget 'smoke': {record.budget['epochs']} of ") for d in record.deviations)
    if expected.train.distill is not None:
        assert record.teacher["variant"] == "teacher" and Path(record.teacher["checkpoint"]).exists()
