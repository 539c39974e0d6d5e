"""Plausible bugs of the layer where records become samples, verdicts, counts and comparisons, each of which the
other tests once missed: every test names the bug it guards, and fails when that bug is put back (issue 26)."""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

from harness.cli import main
from harness.results.compare import compare
from harness.results.record import Record, pack_mask
from harness.results.stats import tolerance
from harness.results.table import rows
from harness.results.verdict import cohorts, evidence
from tests.conftest import REPO
from tests.records import SPECS, record_json

OLDER, NEWER = "2026-12-01T00:00:00+00:00", "2026-12-02T00:00:00+00:00"


@pytest.fixture(autouse=True)
def _project_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)


def load(*records: dict[str, Any], origin: str = "results") -> list[Record]:
    """Records as `harness table` reads them from one folder, each written where its stem says."""
    return [
        Record.from_json({**r, "record_path": f"{origin}/{r['variant']}-{r['run_id']}.json"}, origin=origin)
        for r in records
    ]


def row(report: str, variant: str, records: list[Record]) -> dict[str, Any]:
    return next(r for r in rows([SPECS[report]], records, latency="none") if r["variant"] == variant)


def write(folder: Path, records: list[dict[str, Any]]) -> Path:
    for i, r in enumerate(records):
        (folder / f"{r['report']}-{r['variant']}-{i}.json").write_text(json.dumps(r))
    return folder


def test_stale_records_never_pool_so_compare_refuses_them(capsys, tmp_path: Path) -> None:
    """Bug a: stale records pooled into `cohorts()`: `compare` then ran Welch's test on records without a results
    version (p = 0.0015) instead of refusing, and a stale re-run displaced a seed's current record."""
    old = [record_json("dmsresnet", "as-coded", s, a, results_version=None) for s, a in enumerate((96.0, 96.2, 96.1))]
    old += [
        record_json("resnet4323-se", "as-coded", s, a, results_version=None) for s, a in enumerate((95, 95.1, 95.2))
    ]
    assert cohorts(load(*old)) == [] and evidence(load(*old)).n == 0
    assert (
        main(["compare", "dmsresnet/as-coded", "resnet4323-se/as-coded", "--results", str(write(tmp_path, old))]) == 2
    )
    err = capsys.readouterr().err
    assert "no finished run of its current recipe (stale records do not count)" in err and err.count("\n") == 1
    current = record_json("dmsresnet", "as-coded", 0, 90.0, finished_at=OLDER)
    newer_but_stale = record_json("dmsresnet", "as-coded", 0, 99.0, finished_at=NEWER, results_version=None)
    shown = row("dmsresnet", "as-coded", load(current, newer_but_stale))
    assert (shown["n_seeds"], shown["test_acc_mean"], shown["n_stale"]) == (1, 90.0, 1)


def test_each_seed_is_sampled_by_its_newest_run() -> None:
    """Bug b: each seed's sample taken from its oldest record instead of its newest (a re-run of a seed with
    settings outside the cohort, here the layout, is a newer sample of the same estimate)."""
    first = record_json("dmsresnet", "as-coded", 0, 90.0, finished_at=OLDER)
    rerun = record_json("dmsresnet", "as-coded", 0, 92.0, finished_at=NEWER, channels_last=False)
    for order in ((first, rerun), (rerun, first)):  # whatever the order the files are read in
        found = evidence(load(*order))
        assert [r.test_acc for r in found.runs] == [92.0] and found.unused == 1
        shown = row("dmsresnet", "as-coded", load(*order))
        assert (shown["test_acc_mean"], shown["n_unused"], shown["n_records"]) == (92.0, 1, 2)


def test_a_full_budget_cohort_outranks_more_seeds_below_it() -> None:
    """Bug c: `evidence` ranking the seed count above the budget: a full-budget verdict then disappeared behind a
    3-seed reduced-budget cohort."""
    full = record_json("dmsresnet", "as-coded", 0, 96.1)
    reduced = [record_json("dmsresnet", "as-coded", s, 60.0, epochs=5, train_images=4096) for s in range(3)]
    found = evidence(load(*reduced, full))
    assert found.n == 1 and found.reproduction
    shown = row("dmsresnet", "as-coded", load(*reduced, full))
    assert (shown["budget"], shown["verdict"], shown["n_seeds"]) == ("full", "reproduced (1 seed)", 1)


def test_mcnemar_pairs_the_masks_of_each_runs_own_selection_rule() -> None:
    """Bug d: McNemar in `compare` on the last-epoch masks whatever the selection rule. The clean figure is the
    model of the spec's selection (record.SELECT_RULE), so its paired test is on that model's images."""
    base = np.zeros(10_000, dtype=bool)
    base[:9_000] = True
    best_a, best_b = base.copy(), base.copy()
    best_a[9_000:9_030] = True  # the best-val models: only A right on 30 images, only B on 10
    best_b[9_030:9_040] = True
    sides = []
    for variant, best in (("as-coded", best_a), ("as-written", best_b)):
        r = record_json("dmsresnet", variant, 0, 90.0)
        r["selection"], r["test_acc"] = "best-val", r["test_acc_by_rule"]["best-val"]
        r["test_correct"] = {"last-epoch": pack_mask(base), "best-val": pack_mask(best)}  # last epochs agree
        sides.append((f"dmsresnet/{variant}", evidence(load(r))))
    (pair,) = compare(*sides)["paired"]
    assert (pair["only_a"], pair["only_b"]) == (30, 10)
    assert pair["p_value"] == pytest.approx(2 * stats.binom.cdf(10, 40, 0.5), rel=1e-11)


def test_p_values_and_power_are_of_the_claims_rule_figure() -> None:
    """Bug e: the one-sided tests and the power statement computed from the clean figure instead of the claim
    rule's figure (004's 97.0% is its best test epoch; its clean, last-epoch figure is about 3 points lower)."""
    claim = SPECS["resnet4323-se"].headline("as-coded")
    pairs = [(93.96, 97.0), (93.8, 96.9), (94.1, 97.2)]
    runs = [record_json("resnet4323-se", "as-coded", s, last, best_test=best) for s, (last, best) in enumerate(pairs)]
    shown = row("resnet4323-se", "as-coded", load(*runs))
    best = [b for _, b in pairs]
    mean, se, half = statistics.fmean(best), statistics.stdev(best) / math.sqrt(3), tolerance(claim.step)
    assert claim.selection == "test-early-stop" and shown["rule_acc_mean"] == pytest.approx(mean)
    assert shown["p_below_claim"] == pytest.approx(stats.t.cdf((mean - claim.value + half) / se, 2), rel=1e-11)
    assert shown["p_above_claim"] == pytest.approx(stats.t.sf((mean - claim.value - half) / se, 2), rel=1e-11)
    assert shown["p_below_claim"] > 0.3 and shown["verdict"] == "reproduced"  # the clean figure would give p ~ 0


def test_a_given_teacher_makes_its_own_cohort() -> None:
    """Bug f: the teacher dropped from the cohort (identity.COHORT_FIELDS): students distilled from a given
    teacher checkpoint then pooled with those distilled from the teacher's own run."""
    own = [record_json("dmsresnet", "as-coded", s, a) for s, a in enumerate((96.0, 96.2, 96.1))]
    given = [record_json("dmsresnet", "as-coded", s, 80.0, teacher="c" * 64, finished_at=NEWER) for s in range(2)]
    assert len(cohorts(load(*own, *given))) == 2
    shown = row("dmsresnet", "as-coded", load(*own, *given))
    assert (shown["n_seeds"], shown["test_acc_mean"], shown["n_unused"]) == (3, pytest.approx(96.1), 0)


def test_compare_refuses_runs_on_other_data_in_one_line(capsys, tmp_path: Path) -> None:
    """Bug g: `compare` ignoring the data source: a cohort on a JPEG copy compared against one on the official
    pixels. It must refuse, in one line that names both data."""
    runs = [record_json("dmsresnet", "as-coded", s, a) for s, a in enumerate((96.0, 96.2, 96.1))]
    runs += [record_json("dmsresnet", "as-written", s, a, official=False) for s, a in enumerate((95.0, 95.1, 95.2))]
    args = ["compare", "dmsresnet/as-coded", "dmsresnet/as-written", "--results", str(write(tmp_path, runs))]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("harness: error: dmsresnet/as-coded ran on the official CIFAR-10")
    assert "but dmsresnet/as-written on jpeg copy" in err and "compare runs on one data set" in err


def test_counts_are_of_the_rows_cohort_and_count_each_run_once() -> None:
    """Counts belong to the cohort a row shows, and a run counts once however many folders hold it: a bf16
    3-epoch divergence once showed on the fp32 1-epoch row, and a copied folder doubled `n_unused`."""
    size = {"epochs": 1, "train_images": 64}
    shown = [record_json("resnet10", "resnet12-grid", s, 50.0, **size) for s in range(2)]
    rerun = record_json("resnet10", "resnet12-grid", 0, 51.0, finished_at=NEWER, channels_last=False, **size)
    diverged = record_json("resnet10", "resnet12-grid", 2, 9.0, status="diverged", **size)
    elsewhere = record_json("resnet10", "resnet12-grid", 3, 9.0, status="diverged", precision="bf16", epochs=3)
    stale = record_json("resnet10", "resnet12-grid", 4, 50.0, results_version=None, **size)
    edited = record_json("resnet10", "resnet12-grid", 5, 50.0, spec_hash="0" * 16, **size)
    stale_elsewhere = record_json("resnet10", "resnet12-grid", 6, 50.0, results_version=None, epochs=3)
    records = load(*shown, rerun, diverged, elsewhere, stale, edited, stale_elsewhere)
    counts = ("n_seeds", "n_records", "n_unused", "n_diverged", "n_stale")
    expected = (2, 3, 1, 1, 2)
    assert tuple(row("resnet10", "resnet12-grid", records)[k] for k in counts) == expected
    copies = [dataclasses.replace(r, origin="copy") for r in records]
    assert tuple(row("resnet10", "resnet12-grid", records + copies + copies)[k] for k in counts) == expected
    nothing_shown = row("resnet10", "resnet12-grid", load(diverged, elsewhere, stale, stale_elsewhere))
    assert (nothing_shown["verdict"], nothing_shown["n_diverged"], nothing_shown["n_stale"]) == ("not run", 2, 2)


def test_a_rerun_without_the_rules_figure_never_displaces_one_with_it() -> None:
    """A seed's sample under a claim's rule is its newest run that has the rule's figure: a later re-run without
    --track-test once replaced a record holding the best test epoch, and a 3-seed verdict fell to `(n=2)`."""
    runs = [record_json("resnet4323-se", "as-coded", s, 94.0, best_test=97.0 + s / 10) for s in range(3)]
    rerun = record_json("resnet4323-se", "as-coded", 2, 94.3, finished_at=NEWER)  # no test curve: no best test epoch
    records = load(*runs, rerun)
    shown = row("resnet4323-se", "as-coded", records)
    assert (shown["rule_n"], shown["rule_acc_mean"], shown["verdict"]) == (3, pytest.approx(97.1), "reproduced")
    assert shown["test_acc_mean"] == pytest.approx(94.1)  # the clean figure is still each seed's newest
    assert set(shown["records_used"]) == {r.record_path for r in records}  # the older run of seed 2 was used too
