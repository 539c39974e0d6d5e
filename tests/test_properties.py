"""Property-based robustness: specs and argument lists mutated at random never end in a traceback, and
random sets of records never change what the leaderboard says by how they are copied or what else is found.

Whatever a user writes, `harness` exits 0 (valid) or 2 (one line per problem), and on failure writes
nothing. Training itself is replaced by a stub once every input has been checked, so each example costs
milliseconds; the inputs the stub receives are exactly those a real run would train on.

Records (finished, stale, diverged, other-protocol and other-data, spread across folders): a copy of a
record or a folder changes no count or figure, records that never pool change no figure, n counts the
distinct seeds of the cohort a row shows and its counts are of that cohort, and nothing below the full
budget or off the official data is judged.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import os
import statistics
import tempfile
import tomllib
import types
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.cli import main
from harness.results.identity import RESULTS_VERSION
from harness.results.record import Record
from harness.results.table import rows as leaderboard_rows
from harness.results.verdict import RULE_FIGURE, evidence
from harness.train import loop as train
from tests.conftest import JPEG_ARCHIVE, SPEC_FILES
from tests.records import SPECS as RECORD_SPECS
from tests.records import record_json

EXAMPLES = int(os.environ.get("HARNESS_PROPERTY_EXAMPLES", "200"))
SPECS = {path.stem: tomllib.loads(path.read_text(encoding="utf-8")) for path in SPEC_FILES}

# Values a mutation writes: wrong types, extremes, non-finite floats, names that exist elsewhere, paths.
VALUES = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, -1, 2, 3, 7, 32, 64, 10**6, 2**63, 10**12]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, 0.5, 1.0, 1.5, -0.1, 1e-12, 1e38]),
    st.booleans(),
    st.text(max_size=8),
    st.sampled_from(["cifar_resnet", "sgd", "cosine", "basic", "bottleneck", "stem", "block", "../escape", "teacher"]),
    st.lists(st.integers(min_value=-2, max_value=600), max_size=5),
    st.just({}),
)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path in a parsed TOML document (tables and arrays)."""
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _paths(value, prefix + (i,))
    return found


def _apply(doc: Any, path: tuple, action: str, value: Any) -> None:
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if action == "delete":
        del parent[last]
    else:
        parent[last] = value


@st.composite
def mutated_spec(draw: st.DrawFn) -> tuple[str, str]:
    name = draw(st.sampled_from(sorted(SPECS)))
    doc = copy.deepcopy(SPECS[name])
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        paths = _paths(doc)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        _apply(doc, path, draw(st.sampled_from(["delete", "replace", "replace"])), draw(VALUES))
    return name, tomli_w.dumps(doc)


@functools.cache
def _load_once(path: str | None) -> Any:
    from harness.data.cifar10 import load_cifar10

    return load_cifar10(path)


def _stub_training(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Replace the training proper (and latency timing) by stubs; return what the stub was given."""
    seen: list[Any] = []

    def train_and_test(ctx: Any, events: Any) -> Any:
        seen.append(ctx)
        return types.SimpleNamespace(status="complete")

    monkeypatch.setattr(train, "train_and_test", train_and_test)
    # the data set read once for all examples (a refusal is not cached: bad paths are still refused)
    monkeypatch.setattr("harness.train.request.load_cifar10", _load_once)

    from harness.measure.latency import Timing

    def fake_timing(*_: Any, **__: Any) -> Timing:  # the clock is not part of these properties
        return Timing("cpu", 1, 1.0, 1.0, 1.0, 1, 1)

    monkeypatch.setattr("harness.measure.latency.time_model", fake_timing)
    return seen


def _assert_clean_exit(code: int, err: str, results: Path) -> None:
    assert code in (0, 2), (code, err)
    assert "Traceback" not in err and "internal error" not in err, err
    if code == 2:
        assert err.strip(), "a refusal says why"
        assert not results.exists(), "nothing is written on failure"


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=mutated_spec())
def test_mutated_specs_are_accepted_or_refused_in_one_line(case: tuple[str, str], monkeypatch, capsys) -> None:
    _stub_training(monkeypatch)
    _, text = case
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "spec.toml"
        path.write_text(text, encoding="utf-8")
        results = Path(folder) / "results"
        code = main(["check", str(path)])
        _, err = capsys.readouterr()
        _assert_clean_exit(code, err, results)
        argv = ["run", str(path), "--profile", "smoke", "--subset", "64", "--data", str(JPEG_ARCHIVE)]
        code = main([*argv, "--results", str(results), "--quiet"])
        _, err = capsys.readouterr()
        _assert_clean_exit(code, err, results)


# Argument lists: valid command lines, then tokens dropped, replaced or inserted at random.
TOKENS = st.sampled_from(
    [
        "--variant",
        "resnet12-grid",
        "as-coded",
        "--seed",
        "--epochs",
        "--subset",
        "--profile",
        "smoke",
        "full",
        "--precision",
        "bf16",
        "fp32",
        "--channels-last",
        "on",
        "--augment",
        "torchvision",
        "--track-test",
        "--robustness",
        "--no-robustness",
        "--device",
        "cpu",
        "cuda",
        "mps",
        "--results",
        "--data",
        "--protocol",
        "common",
        "--teacher-checkpoint",
        "--json",
        "--rounds",
        "--format",
        "csv",
        "json",
        "--specs",
        "--common",
        "--workers",
        "-1",
        "0",
        "1",
        "3",
        "64",
        "99999999999999999999999",
        "nan",
        "",
        "x",
        "/",
        "/dev/null",
        "/nonexistent",
        "reproductions",
        "reproductions/resnet10.toml",
        "reproductions/common.toml",
        "resnet10/resnet12-grid",
        "dmsresnet/as-coded",
    ]
)
COMMANDS = [
    ["check", "reproductions/resnet10.toml"],
    [
        "run",
        "reproductions/resnet10.toml",
        "--variant",
        "resnet12-grid",
        "--profile",
        "smoke",
        "--subset",
        "64",
        "--data",
        "JPEG",
        "--results",
        "RESULTS",
        "--quiet",
    ],
    ["measure", "reproductions/resnet443-se.toml", "--no-latency", "--json"],
    ["table", "--no-latency", "--results", "RESULTS", "--format", "csv"],
    ["audit", "reproductions/resnet4323-se.toml", "--variant", "as-coded"],
    ["compare", "resnet10/resnet12-grid", "resnet10/resnet12-as-written", "--results", "RESULTS"],
    ["eval", "/nonexistent/final.pt", "--data", "JPEG"],
]


@st.composite
def mutated_argv(draw: st.DrawFn) -> list[str]:
    argv = list(draw(st.sampled_from(COMMANDS)))
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        action = draw(st.sampled_from(["drop", "replace", "insert"]))
        if action == "drop" and len(argv) > 1:
            del argv[draw(st.integers(min_value=1, max_value=len(argv) - 1))]
        elif action == "replace" and len(argv) > 1:
            argv[draw(st.integers(min_value=1, max_value=len(argv) - 1))] = draw(TOKENS)
        else:
            argv.insert(draw(st.integers(min_value=1, max_value=len(argv))), draw(TOKENS))
    return argv


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(argv=mutated_argv())
def test_mutated_argument_lists_are_accepted_or_refused_in_one_line(
    argv: list[str], monkeypatch, capsys, counted_sizes: None
) -> None:
    from tests.conftest import REPO

    monkeypatch.chdir(REPO)
    _stub_training(monkeypatch)
    with tempfile.TemporaryDirectory() as folder:
        results = Path(folder) / "results"
        argv = [str(JPEG_ARCHIVE) if a == "JPEG" else str(results) if a == "RESULTS" else a for a in argv]
        if argv[0] == "eval" and any(Path(a).is_file() and a.endswith(".pt") for a in argv):
            return  # a real checkpoint would be scored in full; not a property of input handling
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse refuses before main's handlers
            code = exit_.code
        _, err = capsys.readouterr()
        assert code in (0, 2), (argv, code, err)
        assert "Traceback" not in err and "internal error" not in err, (argv, err)
        if code == 2:
            assert err.strip() and err.count("\n") >= 1
            assert not results.exists() or argv[0] != "run", "a refused run writes nothing"


# Record sets: the layer where records become samples, verdicts and counts. Finished, stale (older harness
# code, an edited spec), diverged, other-protocol and other-data runs of three variants (report 004's claim is
# its best test epoch) in several cohorts, some seeds re-run outside the cohort or without a test curve
# (--track-test), in two folders.
RECORD_ENTRIES = (("dmsresnet", "as-coded"), ("dmsresnet", "as-written"), ("resnet4323-se", "as-coded"))
RECORD_BOARD = [RECORD_SPECS["dmsresnet"], RECORD_SPECS["resnet4323-se"]]
DRAWN_ENTRIES = (*RECORD_ENTRIES, RECORD_ENTRIES[2], RECORD_ENTRIES[2])  # 004 half the time: its rule needs a curve
POOLING = {  # kinds of finished, current, own-protocol runs: a cohort each
    "full": {},
    "jpeg": {"official": False},
    "reduced": {"epochs": 5, "train_images": 4096},
    "bf16": {"precision": "bf16"},
    "teacher": {"teacher": "c" * 64},  # distilled from a given teacher checkpoint
}
NEVER_POOLED = {  # kinds that never add a sample to the own recipe's cohorts
    "diverged": {"status": "diverged"},
    "diverged-reduced": {"status": "diverged", "epochs": 5, "train_images": 4096},
    "stale": {"results_version": None},
    "edited": {"spec_hash": "0" * 16},
    "common": {"protocol": "common"},
}
OUTSIDE_COHORT = ({}, {"channels_last": False}, {"device_type": "cpu"})
# What a cohort leaves out of a run's identity (identity.py's docstring, written out here, not read from it)
OUTSIDE_FIELDS = {"seed", "profile", "device_type", "channels_last", "augment", "workers", "compile", "deterministic"}
OUTSIDE_FIELDS |= {"track_test", "robustness"}
COUNTS = ("n_seeds", "n_records", "n_unused", "n_diverged", "n_stale")
FIGURES = ("test_acc_mean", "test_acc_std", "rule_n", "rule_acc_mean", "ci95", "delta", "p_below_claim", "verdict")
JUDGED = ("reproduced", "below claim", "above claim")
RECORD_PROPERTY = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@st.composite
def record_sets(draw: st.DrawFn, kinds: tuple[str, ...] = (*POOLING, *NEVER_POOLED)) -> list[Record]:
    found = []
    for index in range(draw(st.integers(0, 14))):
        (report, variant), seed = draw(st.sampled_from(DRAWN_ENTRIES)), draw(st.integers(0, 2))
        acc = draw(st.integers(8000, 9900)) / 100
        kind = draw(st.sampled_from(kinds))
        outside = draw(st.sampled_from(OUTSIDE_COHORT))
        best = draw(st.sampled_from([None, 0.3, -0.1]))  # None: run without --track-test
        data = record_json(
            report,
            variant,
            seed,
            acc,
            best_test=None if best is None else acc + best,
            finished_at=f"2026-12-0{draw(st.integers(1, 3))}T{index:02d}:00:00+00:00",  # no two alike
            **{**POOLING.get(kind, {}), **NEVER_POOLED.get(kind, {}), **outside},
        )
        data["record_path"] = f"results/{report}/{variant}/{data['run_id']}.json"
        found.append(Record.from_json(data, origin=draw(st.sampled_from(["results", "runs"]))))
    return found


def record_rows(records: list[Record]) -> list[dict[str, Any]]:
    return leaderboard_rows(RECORD_BOARD, records, latency="none")


def board(records: list[Record], keys: tuple[str, ...] = COUNTS + FIGURES) -> list[tuple[Any, ...]]:
    """What the leaderboard says of every variant: counts, figures and every claim's judgement."""
    return [
        (*(row[k] for k in keys), sorted(row["records_used"]), [sorted(c.items()) for c in row["claim_verdicts"]])
        for row in record_rows(records)
    ]


def asked(records: list[Record], report: str, variant: str) -> list[Record]:
    """What the table and compare ask for: the variant's records of its current recipe, own protocol."""
    spec_hash = RECORD_SPECS[report].variant(variant).spec_hash
    return [r for r in records if (r.report, r.variant, r.spec_hash, r.protocol) == (report, variant, spec_hash, "own")]


def finished(records: list[Record]) -> list[Record]:
    """Finished runs of this harness's results version, by the records' own fields (not verdict.py's)."""
    return [
        r
        for r in records
        if r.status == "complete" and r.test_acc is not None and r.identity.get("results_version") == RESULTS_VERSION
    ]


def cohort(record: Record) -> dict[str, Any]:
    return {k: v for k, v in record.identity.items() if k not in OUTSIDE_FIELDS}


def but_version(record: Record) -> dict[str, Any]:
    """The cohort a stale record would be of under this recipe and harness (the full budget: the recipe's epochs)."""
    kept = {k: v for k, v in cohort(record).items() if k not in ("spec_hash", "results_version")}
    return {**kept, "epochs": None} if kept["full_budget"] else kept


def newest(runs: list[Record]) -> Record:
    return max(runs, key=lambda r: r.finished_at)


@pytest.fixture
def _at_project_root(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import REPO

    monkeypatch.chdir(REPO)


@RECORD_PROPERTY
@given(found=record_sets(), data=st.data())
def test_copied_records_and_folders_change_no_count_or_figure(
    found: list[Record], data: st.DataObject, _at_project_root: None
) -> None:
    copied = data.draw(st.lists(st.sampled_from(found), max_size=6)) if found else []
    copies = [dataclasses.replace(r, origin="elsewhere") for r in copied]
    folder = [dataclasses.replace(r, origin="results-copy") for r in found if r.origin == "results"]
    assert board(found + copies + folder) == board(found)
    for entry in RECORD_ENTRIES:
        before, after = evidence(asked(found, *entry)), evidence(asked(found + copies + folder, *entry))
        assert [r.run_id for r in after.runs] == [r.run_id for r in before.runs]
        assert (after.n, after.distinct, after.unused) == (before.n, before.distinct, before.unused)


@RECORD_PROPERTY
@given(found=record_sets(kinds=tuple(POOLING)), others=record_sets(kinds=tuple(NEVER_POOLED)))
def test_stale_diverged_and_other_protocol_records_change_no_figure(
    found: list[Record], others: list[Record], _at_project_root: None
) -> None:
    figures = ("n_seeds", "n_records", "n_unused", *FIGURES)  # the counts of what never pools aside
    assert board(found + others, figures) == board(found, figures)
    for entry in RECORD_ENTRIES:
        assert evidence(asked(found + others, *entry)).runs == evidence(asked(found, *entry)).runs


@RECORD_PROPERTY
@given(found=record_sets())
def test_n_counts_the_distinct_seeds_and_runs_of_the_cohort_shown(found: list[Record], _at_project_root: None) -> None:
    for row in record_rows(found):
        if (row["report"], row["variant"]) not in RECORD_ENTRIES:
            assert row["n_seeds"] == row["n_records"] == row["n_diverged"] == row["n_stale"] == 0
            continue
        mine = asked(found, row["report"], row["variant"])
        used = [r for r in finished(mine) if r.record_path in row["records_used"]]
        shown = [r for r in finished(mine) if used and cohort(r) == cohort(used[0])]
        assert row["seeds"] == sorted({r.seed for r in shown}) and row["n_seeds"] == len(row["seeds"])
        assert row["n_records"] == len({r.run_id for r in shown}) == row["n_seeds"] + row["n_unused"]
        by_seed = {seed: [r for r in shown if r.seed == seed] for seed in row["seeds"]}
        clean = [newest(runs).test_acc for runs in by_seed.values()]  # each seed's newest run
        assert row["test_acc_mean"] == (pytest.approx(statistics.fmean(clean)) if clean else None)
        for judged in row["claim_verdicts"]:  # under a claim's rule: each seed's newest run that has its figure
            rule = RULE_FIGURE.get(judged["claim_selection"])
            having = [
                [r for r in runs if rule is None or r.test_acc_by_rule.get(rule) is not None]
                for runs in by_seed.values()
            ]
            figures = [
                newest(runs).test_acc_by_rule[rule] if rule else newest(runs).test_acc for runs in having if runs
            ]
            assert judged["rule_n"] == len(figures) <= row["n_seeds"]
            assert judged["rule_acc_mean"] == (pytest.approx(statistics.fmean(figures)) if figures else None)
        diverged = {
            r.run_id
            for r in mine
            if r.status == "diverged" and not r.stale and not (shown and cohort(r) != cohort(shown[0]))
        }
        assert row["n_diverged"] == len(diverged)  # of the cohort shown: a bf16 or reduced divergence is not its
        spec_hash = RECORD_SPECS[row["report"]].variant(row["variant"]).spec_hash
        own = [r for r in found if (r.report, r.variant, r.protocol) == (row["report"], row["variant"], "own")]
        stale = {r.run_id for r in own if r.stale or r.spec_hash != spec_hash}
        assert row["n_stale"] == len(
            {r.run_id for r in own if r.run_id in stale and not (shown and but_version(r) != but_version(shown[0]))}
        )


@RECORD_PROPERTY
@given(found=record_sets())
def test_no_verdict_below_the_full_budget_or_off_the_official_data(found: list[Record], _at_project_root: None) -> None:
    for row in record_rows(found):
        judged = [row, *row["claim_verdicts"]]
        runs = finished(asked(found, row["report"], row["variant"]))
        assert row["reproduction"] == any(r.cohort["full_budget"] and r.data["official"] for r in runs)
        if any(r.cohort["full_budget"] for r in runs):
            assert row["budget"] == "full"  # the full budget outranks any number of seeds below it
        if row["reproduction"]:
            assert all(
                r.data["official"] and r.cohort["full_budget"] for r in runs if r.record_path in row["records_used"]
            )
            continue
        assert all(j["delta"] is None and j["ci95"] is None and j["p_below_claim"] is None for j in judged)
        assert not any(j["verdict"].startswith(JUDGED) for j in judged), row["verdict"]
        assert row["delta_clean"] is None
