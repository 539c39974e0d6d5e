"""Properties of the layer where records become a mean, a CI and a verdict, over random sets of records
spread across folders: copies change nothing, other cohorts change nothing, n is the number of distinct
seeds, nothing below the full budget on the official data is judged, and fewer seeds never narrow a CI.
"""

from __future__ import annotations

import dataclasses
import statistics
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.results.identity import cohort_id
from harness.results.record import Record
from harness.results.stats import summarize
from harness.results.table import rows
from harness.results.verdict import cohorts, evidence
from tests.conftest import REPO
from tests.records import SPECS, record_json
from tests.test_properties import EXAMPLES

SPEC = SPECS["dmsresnet"]
VARIANTS = ("as-coded", "as-written")
KINDS = {  # a cohort each: what was run
    "full": {},
    "jpeg": {"official": False},
    "reduced": {"epochs": 5, "train_images": 4096},
    "bf16": {"precision": "bf16"},
}
OUTSIDE = ({}, {"channels_last": False}, {"device_type": "cpu"})  # settings outside the cohort
JUDGED_WORDS = ("reproduced", "below claim", "above claim")
PROPERTY = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@st.composite
def records(draw: st.DrawFn, kinds: tuple[str, ...] = tuple(KINDS), max_size: int = 12) -> list[Record]:
    """Finished runs of two variants in several cohorts, some seeds re-run outside the cohort, in two folders."""
    found = []
    for _ in range(draw(st.integers(0, max_size))):
        variant = draw(st.sampled_from(VARIANTS))
        seed = draw(st.integers(0, 3))
        acc = draw(st.integers(8000, 9900)) / 100
        given_settings = {**KINDS[draw(st.sampled_from(kinds))], **draw(st.sampled_from(OUTSIDE))}
        finished = draw(st.sampled_from(["2026-12-01T00:00:00+00:00", "2026-12-02T00:00:00+00:00"]))
        data = record_json("dmsresnet", variant, seed, acc, finished_at=finished, **given_settings)
        found.append(Record.from_json(data, origin=draw(st.sampled_from(["results", "runs"]))))
    return found


def figures(records: list[Record]) -> list[tuple[Any, ...]]:
    """What the leaderboard says of every variant: seeds, means, spreads, CIs, gaps, verdicts, claim by claim."""
    keys = ("n_seeds", "test_acc_mean", "test_acc_std", "rule_n", "rule_acc_mean", "ci95", "delta", "verdict")
    return [
        (*(row[k] for k in keys), [tuple(sorted(c.items())) for c in row["claim_verdicts"]])
        for row in rows([SPEC], records, latency="none")
    ]


@pytest.fixture(autouse=True)
def _project_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)


@PROPERTY
@given(found=records(), data=st.data())
def test_copies_of_records_or_of_a_whole_folder_change_nothing(found: list[Record], data: st.DataObject) -> None:
    copied = data.draw(st.lists(st.sampled_from(found), max_size=6)) if found else []
    copies = [dataclasses.replace(r, origin="elsewhere") for r in copied]
    folder = [dataclasses.replace(r, origin="results-copy") for r in found if r.origin == "results"]
    assert figures(found + copies + folder) == figures(found)


@PROPERTY
@given(found=records(kinds=("full", "reduced")), others=records(kinds=("jpeg", "bf16")))
def test_records_of_other_cohorts_change_nothing_in_a_cohort(found: list[Record], others: list[Record]) -> None:
    before = {cohort_id(e.runs[0].cohort): [r.run_id for r in e.runs] for e in cohorts(found)}
    after = {cohort_id(e.runs[0].cohort): [r.run_id for r in e.runs] for e in cohorts(found + others)}
    assert {key: after[key] for key in before} == before


@PROPERTY
@given(found=records())
def test_n_is_the_number_of_distinct_seeds(found: list[Record]) -> None:
    for cohort in cohorts(found):
        key = cohort_id(cohort.runs[0].cohort)
        seeds = {r.seed for r in found if cohort_id(r.cohort) == key}
        assert cohort.n == len(seeds) and [r.seed for r in cohort.runs] == sorted(seeds)
    by_variant = {row["variant"]: row for row in rows([SPEC], found, latency="none")}
    for variant in VARIANTS:
        strongest = evidence([r for r in found if r.variant == variant])
        assert by_variant[variant]["n_seeds"] == len({r.seed for r in strongest.runs})


@PROPERTY
@given(found=records())
def test_nothing_below_the_full_budget_on_the_official_data_is_judged(found: list[Record]) -> None:
    for row in rows([SPEC], found, latency="none"):
        if row["reproduction"]:
            continue
        judged = [row, *row["claim_verdicts"]]
        assert all(j["delta"] is None and j["ci95"] is None and j["p_below_claim"] is None for j in judged)
        assert not any(j["verdict"].startswith(JUDGED_WORDS) for j in judged), row["verdict"]
        assert row["delta_clean"] is None


@PROPERTY
@given(
    values=st.lists(st.integers(8000, 9900), min_size=3, max_size=10, unique=True),
    keep=st.integers(1, 9),
)
def test_fewer_seeds_never_give_a_narrower_ci(values: list[int], keep: int) -> None:
    # A CI's width depends on the seeds and their spread: at one spread, fewer seeds give a wider interval,
    # and one seed none at all.
    full = summarize([v / 100 for v in values])
    fewer = [v / 100 for v in values[: min(keep, len(values) - 1)]]
    if len(fewer) == 1:
        assert summarize(fewer).ci95 is None
        return
    spread = statistics.stdev(fewer)
    if spread == 0:
        return
    rescaled = summarize([full.mean + (v - statistics.fmean(fewer)) * full.std / spread for v in fewer])
    assert rescaled.std == pytest.approx(full.std)
    assert rescaled.ci95[1] - rescaled.ci95[0] > full.ci95[1] - full.ci95[0]
