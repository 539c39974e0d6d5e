"""The records committed in results/, re-verified: each one's size recounted, its recipe current or listed
as stale by the table, and its headline figures the ones its own history gives."""

from __future__ import annotations

import re
import statistics
from collections import Counter

import pytest

from harness.measure.size import size_of
from harness.models import MODELS
from harness.results.record import SELECT_RULE, Record, load_records
from harness.results.table import rows
from harness.spec import as_tuples
from tests.conftest import REPO
from tests.records import SPECS

SHIPPED, PROBLEMS = load_records(REPO / "results")
CURRENT = {(s.name, name): v.spec_hash for s in SPECS.values() for name, v in s.variants.items()}


def test_every_shipped_file_is_a_readable_record_listed_with_its_provenance() -> None:
    """results/README.md's table lists every record file in results/ (how it was made, at which commit), and
    no file that is not there."""
    listed = set(re.findall(r"(?m)^\| `([^`]+\.json)` \|", (REPO / "results" / "README.md").read_text()))
    on_disk = {p.relative_to(REPO / "results").as_posix() for p in (REPO / "results").rglob("*.json")}
    assert not PROBLEMS and listed == on_disk and len(SHIPPED) == len(on_disk)


def _model_of(record: Record) -> object:
    config = record.recipe["model"]
    return MODELS[config["arch"]].config.model_validate(as_tuples(config))


@pytest.mark.parametrize("record", SHIPPED, ids=lambda r: f"{r.report}/{r.variant}/{r.run_id[:8]}")
def test_parameters_and_macs_recount(record: Record) -> None:
    size = size_of(_model_of(record))
    assert (record.params, record.macs) == (size.params, size.macs)


def test_each_record_is_current_or_listed_as_stale(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    stale = Counter(
        (r.report, r.variant)
        for r in SHIPPED
        if r.protocol == "own" and (r.stale or CURRENT.get((r.report, r.variant)) != r.spec_hash)
    )
    assert all((r.report, r.variant) in CURRENT for r in SHIPPED)  # no record of a variant that no spec has
    board = rows(list(SPECS.values()), SHIPPED, latency="none")
    assert {(row["report"], row["variant"]): row["n_stale"] for row in board if row["n_stale"]} == dict(stale)
    for row in board:  # what the table pools is current: the right recipe, this harness's results version
        used = [r for r in SHIPPED if r.record_path in row["records_used"]]
        assert all(not r.stale and r.spec_hash == CURRENT[(row["report"], row["variant"])] for r in used)


@pytest.mark.parametrize("record", SHIPPED, ids=lambda r: f"{r.report}/{r.variant}/{r.run_id[:8]}")
def test_headline_figures_match_the_records_own_history(record: Record) -> None:
    history = record.history
    assert [h["epoch"] for h in history] == list(range(1, record.budget["epochs"] + 1))  # every epoch, from 1
    rule = SELECT_RULE[record.selection]
    if record.test_acc_by_rule.get(rule) is not None:
        assert record.test_acc == record.test_acc_by_rule[rule]  # the clean figure is its rule's
    best_val = max(history, key=lambda h: (h["val_acc"], h["epoch"]))  # ties: the later epoch
    selected = best_val["epoch"] if record.selection == "best-val" else history[-1]["epoch"]
    assert record.selected_epoch == selected and record.val_acc == history[selected - 1]["val_acc"]
    if record.test_acc_by_rule.get("best-val-epoch") is not None:
        assert record.test_acc_by_rule["best-val-epoch"] == best_val["epoch"]
    monitor = [h["test_acc_monitor"] for h in history if "test_acc_monitor" in h]
    if monitor:
        assert record.test_acc_by_rule["best-epoch-test"] == max(monitor)
    assert record.train_images_per_s == pytest.approx(statistics.median(h["train_images_per_s"] for h in history))
    assert record.device_hours == pytest.approx(record.wall_time_s / 3600)
    assert sum(h["seconds"] for h in history) <= record.wall_time_s * 1.001  # epochs fit in the run's time


def test_every_shipped_record_is_current() -> None:
    """A fresh clone's table shows no stale count: a record of an older recipe or results version is re-run
    or removed (it stays in git history), never shipped."""
    old = [r.read_from for r in SHIPPED if r.stale or CURRENT.get((r.report, r.variant)) != r.spec_hash]
    assert not old, f"stale records in results/: {old}"
