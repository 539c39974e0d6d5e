"""Property-based robustness: specs and argument lists mutated at random never end in a traceback.

Whatever a user writes, `harness` exits 0 (valid) or 2 (one line per problem), and on failure writes
nothing. Training itself is replaced by a stub once every input has been checked, so each example costs
milliseconds; the inputs the stub receives are exactly those a real run would train on.
"""

from __future__ import annotations

import copy
import os
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
from harness.train import loop as train
from tests.conftest import JPEG_ARCHIVE, SPEC_FILES

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


def _stub_training(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Replace the training proper (and latency timing) by stubs; return what the stub was given."""
    seen: list[Any] = []

    def train_and_test(ctx: Any, events: Any) -> Any:
        seen.append(ctx)
        return types.SimpleNamespace(status="complete")

    monkeypatch.setattr(train, "train_and_test", train_and_test)

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
def test_mutated_argument_lists_are_accepted_or_refused_in_one_line(argv: list[str], monkeypatch, capsys) -> None:
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
