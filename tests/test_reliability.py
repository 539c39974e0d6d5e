"""Reliability: a catalogue of bad inputs, divergence, locks, kills and what specs may not do."""

from __future__ import annotations

import fcntl
import json
import os
import random
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from harness.cli import main
from harness.common.events import Silent
from harness.spec import load_spec
from harness.train import checkpoint
from harness.train.loop import run
from harness.train.request import RunOptions
from tests.conftest import COMMON, REPO, SPECS_DIR

DMS = (SPECS_DIR / "dmsresnet.toml").read_text(encoding="utf-8")
R10 = (SPECS_DIR / "resnet10.toml").read_text(encoding="utf-8")


def edit(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


# (id, how to build the input, argv after the input path, what stderr must contain)
SPEC_CASES = [
    ("missing-key", edit(DMS, "year = 2024\n", ""), "report.year: missing required key"),
    (
        "unknown-key",
        edit(DMS, "momentum = 0.9", "momentun = 0.9"),
        "train.optimizer.momentun: unknown key (did you mean momentum?)",
    ),
    ("wrong-type", edit(DMS, "epochs = 200", 'epochs = "200"'), "train.epochs: Input should be a valid integer"),
    (
        "out-of-range",
        edit(DMS, "dropout_fc = 0.1", "dropout_fc = 1.5"),
        "model.dropout_fc: Input should be less than 1",
    ),
    (
        "unknown-model",
        edit(DMS, 'arch = "cifar_resnet"', 'arch = "resnet"'),
        "model.arch: 'resnet' is not one of 'cifar_resnet'",
    ),
    ("unknown-op", edit(DMS, 'op = "hflip"', 'op = "vflip"'), "augment.train[1]: unknown augment op 'vflip'"),
    (
        "unknown-optimizer",
        edit(DMS, 'name = "sgd"', 'name = "sgdm"'),
        "train.optimizer: unknown optimizer 'sgdm' (did you mean sgd?)",
    ),
    ("unknown-schedule", edit(DMS, 'name = "cosine"', 'name = "cos"'), "train.schedule: unknown schedule 'cos'"),
    ("unknown-init", edit(DMS, 'init = "pytorch_default"', 'init = "he"'), "model.init: unknown init scheme 'he'"),
    (
        "phases",
        edit((SPECS_DIR / "resnet4323-se.toml").read_text(), "epochs = 50", "epochs = 5"),
        "train.phases: phase epochs add up to 405",
    ),
    (
        "pool-kernel",
        edit(DMS, "pool_kernel = 8 ", "pool_kernel = 4 "),
        "model.pool_kernel: 4 does not cover the final 8x8 map",
    ),
    ("duplicate-claim", edit(DMS, 'id = "se-train"', 'id = "se-val"'), "duplicate claim id 'se-val'"),
    ("claim-variant", edit(DMS, 'variants = ["se"]', 'variants = ["sse"]'), "no variant 'sse' (did you mean se?)"),
    (
        "deviation-key",
        edit(DMS, 'key = "train.lookahead", note = "Lookahead(k=5', 'key = "train.look", note = "Lookahead(k=5'),
        "is not a recipe key",
    ),
    (
        "deviation-kind",
        edit(DMS, '{ kind = "code-differs", key = "train.lookahead"', '{ kind = "typo", key = "train.lookahead"'),
        "kind: 'typo' is not one of",
    ),
    (
        "missing-teacher-variant",
        edit(
            DMS,
            'teacher_variant = "teacher", temperature = 6.0, kd_weight = 0.95',
            'teacher_variant = "teachr", temperature = 6.0, kd_weight = 0.95',
        ),
        "no variant 'teachr'",
    ),
    (
        "missing-teacher-spec",
        edit(DMS, 'teacher_variant = "teacher"\n', 'teacher_variant = "teacher"\nteacher_spec = "gone.toml"\n'),
        "teacher spec 'gone.toml' is not usable",
    ),
    (
        "escaping-teacher-spec",
        edit(
            DMS, 'teacher_variant = "teacher"\n', 'teacher_variant = "teacher"\nteacher_spec = "../../../etc/passwd"\n'
        ),
        "must be a relative path inside",
    ),
    (
        "escaping-report-name",
        edit(DMS, 'name = "dmsresnet"', 'name = "../../tmp/x"'),
        "report.name: String should match pattern",
    ),
    ("escaping-variant-name", edit(DMS, "[variants.se]", '[variants."../se"]'), "String should match pattern"),
    ("extends-cycle", edit(R10, 'extends = "resnet10-grid"', 'extends = "resnet12-as-written"'), "circular"),
    ("bad-toml", "[report\nid = 1", "invalid TOML"),
    ("not-utf8", "\udcff", None),
    ("protocol-as-spec", COMMON.read_text(), "this is a protocol, not a report spec"),
]


@pytest.mark.parametrize(("case", "text", "expected"), SPEC_CASES, ids=[c[0] for c in SPEC_CASES])
@pytest.mark.parametrize("command", ["check", "run"])
def test_bad_specs(tmp_path: Path, capsys, case: str, text: str, expected: str | None, command: str) -> None:
    path = tmp_path / "spec.toml"
    if case == "not-utf8":
        path.write_bytes(b"\xff\xfe[report]")
        expected = "is not UTF-8 text"
    else:
        path.write_text(text, encoding="utf-8")
    results = tmp_path / "results"
    argv = [command, str(path)] + (["--results", str(results), "--profile", "smoke"] if command == "run" else [])
    if case == "protocol-as-spec" and command == "check":
        assert main(argv) == 0  # `check` validates protocol files too; only `run` needs a report spec
        return
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert expected in err
    assert all(line.startswith(str(path)) for line in err.splitlines()), err  # every line names the file
    assert "Traceback" not in err and not results.exists()


@pytest.fixture(scope="module")
def bad_data(tmp_path_factory: pytest.TempPathFactory, jpeg_archive: Path) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad-data")
    truncated = root / "truncated.tar.gz"
    truncated.write_bytes(jpeg_archive.read_bytes()[:3_000_000])
    flat = root / "flat"  # images, but not in train/<class>/ folders
    flat.mkdir()
    (flat / "x.png").write_bytes(b"\x89PNG")
    missing_class = root / "missing-class"
    not_image = root / "not-image"
    with tarfile.open(jpeg_archive) as archive:
        members = [m for m in archive.getmembers() if m.isfile() and m.name.split("/")[-1] in ("0000.jpg", "0001.jpg")]
        for target in (missing_class, not_image):
            archive.extractall(target, members=members, filter="data")
    for path in (missing_class / "cifar10-jpeg" / "test" / "frog").iterdir():
        path.unlink()
    (missing_class / "cifar10-jpeg" / "test" / "frog").rmdir()
    (not_image / "cifar10-jpeg" / "train" / "cat" / "0000.jpg").write_bytes(b"this is not a JPEG")
    text_file = root / "notes.tar.gz"
    text_file.write_text("plain text")
    return {
        "missing": root / "nowhere",
        "truncated": truncated,
        "flat": flat,
        "missing-class": missing_class,
        "not-image": not_image,
        "not-archive": text_file,
    }


DATA_CASES = [
    ("missing", "no such file or folder"),
    ("truncated", "damaged or truncated archive"),
    ("flat", "no train/<class>/ images"),
    ("missing-class", "test/ lacks class folders frog"),
    ("not-image", "train/cat/0000.jpg is not a readable image"),
    ("not-archive", "not a tar archive"),
]


@pytest.mark.parametrize(("case", "expected"), DATA_CASES, ids=[c[0] for c in DATA_CASES])
def test_bad_data(tmp_path: Path, capsys, bad_data: dict[str, Path], case: str, expected: str) -> None:
    results = tmp_path / "results"
    argv = [
        "run",
        str(SPECS_DIR / "resnet10.toml"),
        "--variant",
        "resnet12-grid",
        "--profile",
        "smoke",
        "--data",
        str(bad_data[case]),
        "--results",
        str(results),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"harness: error: {bad_data[case]}") and expected in err
    assert not results.exists()


CLI_CASES = [
    (["run", "SPEC", "--profile", "huge"], "argument --profile: invalid choice: 'huge'"),
    (["run", "SPEC", "--seed", "-1"], "argument --seed: expected a whole number from 0 to"),
    (
        ["run", "SPEC", "--seed", str(2**64)],
        "argument --seed: expected a whole number from 0 to 9,223,372,036,854,775,807",
    ),
    (["run", "SPEC", "--subset", "0"], "argument --subset: expected a whole number from 1 to 10,000,000, got '0'"),
    (["run", "SPEC", "--epochs", "two"], "argument --epochs: expected a whole number from 1 to 100,000, got 'two'"),
    (["run", "SPEC", "--results", "FILE"], "argument --results: FILE is a file, expected a folder"),
    (
        ["run", "SPEC", "--results", "FILE/sub"],
        "argument --results: FILE/sub: FILE is a file, so no folder can be made",
    ),
    (["run", "SPEC", "--variant", "nope"], "variants: no variant 'nope'"),
    (["run", "SPEC", "--subset", "46000", "--data", "JPEG"], "--subset 46000 exceeds the 45000 training images"),
    (["run", "SPEC", "--protocol", "nowhere.toml", "--data", "JPEG"], "nowhere.toml: no such protocol file"),
    (["run", "SPEC", "--teacher-checkpoint", "/nonexistent.pt"], None),
    (["frobnicate"], "argument command: invalid choice: 'frobnicate'"),
    (["table", "--format", "html"], "argument --format: invalid choice: 'html'"),
    (["compare", "resnet10", "dmsresnet/as-coded"], "'resnet10': expected REPORT/VARIANT"),
    (["eval", ""], ".: a folder, not a checkpoint file (expected a run's final.pt or epoch-NNNN.pt)"),
    (["eval", "/nonexistent/final.pt"], "/nonexistent/final.pt: no such checkpoint file"),
    (["measure", "SPEC", "--rounds", "0"], "argument --rounds: expected a whole number from 1"),
    (["eval", "NOTCKPT"], "NOTCKPT: unreadable, not a PyTorch checkpoint"),
    (["plot", "--out", "FILE"], "argument --out: FILE is a file, expected a folder"),
]


@pytest.mark.parametrize(("argv", "expected"), CLI_CASES, ids=[" ".join(c[0][:3]) for c in CLI_CASES])
def test_bad_arguments(
    tmp_path: Path, capsys, monkeypatch, jpeg_archive: Path, argv: list[str], expected: str | None
) -> None:
    monkeypatch.chdir(REPO)
    results = tmp_path / "results"
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder, not a checkpoint")
    named = {"SPEC": str(SPECS_DIR / "resnet10.toml"), "JPEG": str(jpeg_archive), "NOTCKPT": str(a_file)}
    argv = [named.get(a, a).replace("FILE", str(a_file)) for a in argv]
    expected = expected and expected.replace("FILE", str(a_file)).replace("NOTCKPT", str(a_file))
    if argv[0] == "run" and "--results" not in argv:
        argv += ["--results", str(results)]
    if "--teacher-checkpoint" in argv:
        argv[1] = str(SPECS_DIR / "dmsresnet.toml")
        argv += ["--profile", "smoke", "--subset", "64", "--data", str(jpeg_archive)]
        expected = "teacher checkpoint /nonexistent.pt: no such checkpoint file"
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2 and expected in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert not results.exists()


def test_a_nan_loss_stops_the_run_and_is_recorded(jpeg_archive: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    from harness.train import step

    calls = {"n": 0, "armed": False}
    real = step.training_loss

    def poisoned(*args, **kwargs):
        calls["n"] += calls["armed"]  # the run's own steps, not the estimate's timing probe before them
        loss = real(*args, **kwargs)
        return loss * float("nan") if calls["n"] == 3 else loss

    class ArmAfterEstimate(Silent):
        def message(self, text: str) -> None:
            calls["armed"] = calls["armed"] or text.startswith("estimate:")

    monkeypatch.setattr(step, "training_loss", poisoned)
    options = RunOptions(profile="smoke", epochs=3, subset=512, data=str(jpeg_archive), device="cpu")
    record = run(load_spec(SPECS_DIR / "resnet10.toml"), "resnet12-grid", options, tmp_path, ArmAfterEstimate())
    assert record.status == "diverged" and record.test_acc is None
    assert record.diverged_at == {"epoch": 2, "step": 0, "loss": "nan"}  # 2 steps an epoch: the third step, epoch 2
    assert calls["n"] == 3 and len(record.history) == 1  # stopped within the step it happened
    assert json.loads(Path(record.record_path).read_text())["status"] == "diverged"
    monkeypatch.chdir(REPO)
    assert main(["table", "--results", str(tmp_path), "--format", "json", "--no-latency"]) == 0
    row = next(r for r in json.loads(capsys.readouterr().out) if r["variant"] == "resnet12-grid")
    assert row["n_diverged"] == 1 and row["verdict"] == "not run"
    assert main(["table", "--results", str(tmp_path), "--no-latency"]) == 0
    assert "not run, 1 div" in capsys.readouterr().out
    assert main(["table", "--results", str(tmp_path), "--no-latency", "--wide"]) == 0
    assert "not run (1 diverged)" in capsys.readouterr().out


def test_an_exploding_learning_rate_diverges_through_the_cli(jpeg_archive: Path, tmp_path: Path, capsys) -> None:
    spec = tmp_path / "spec.toml"
    spec.write_text(
        # the grid variants then no longer equal their Appendix Table 4 cells: the grid makes those cells itself
        re.sub(
            r'\[grids\.table4\.explicit\]\n(?:"[^"\n]+" = "[^"\n]+"\n)+',
            "",
            edit(R10, 'train.optimizer = { name = "sgd", lr = 0.1,', 'train.optimizer = { name = "sgd", lr = 1e38,'),
        )
    )
    argv = [
        "run",
        str(spec),
        "--variant",
        "resnet10-grid",
        "--profile",
        "smoke",
        "--subset",
        "512",
        "--epochs",
        "2",
        "--data",
        str(jpeg_archive),
        "--results",
        str(tmp_path / "r"),
        "--quiet",
    ]
    assert main(argv) == 1
    assert "stopping (diverged)" in capsys.readouterr().out


def test_a_live_lock_refuses_a_second_process_and_a_stale_one_is_taken_over(jpeg_archive: Path, tmp_path: Path) -> None:
    spec = load_spec(SPECS_DIR / "resnet10.toml")
    options = RunOptions(profile="smoke", subset=64, data=str(jpeg_archive), device="cpu")
    from harness.data.cifar10 import load_cifar10
    from harness.train.request import identify, make_budget

    variant = spec.variant("resnet12-grid")
    budget = make_budget(variant.recipe, "smoke", None, 64)
    key = identify(spec, variant, options, budget, load_cifar10(jpeg_archive).sha256, "cpu")
    lock = key.checkpoint_dir(tmp_path) / "run.lock"
    lock.parent.mkdir(parents=True)
    with open(lock, "w") as held:  # a live holder: the lock taken on another open file, a pid written
        fcntl.flock(held, fcntl.LOCK_EX)
        held.write(str(os.getppid()))
        held.flush()
        with pytest.raises(checkpoint.LockError, match=r"already in progress \(process"):
            run(spec, "resnet12-grid", options, tmp_path, Silent())
    lock.write_text("999999999")  # a pid left by a dead process, no lock held
    assert run(spec, "resnet12-grid", options, tmp_path, Silent()).status == "complete"
    assert not lock.exists()


def _harness(*args: str) -> list[str]:
    return [sys.executable, "-m", "harness.cli", *args]


def test_two_runs_into_one_folder_at_once(jpeg_archive: Path, tmp_path: Path) -> None:
    common = [
        "run",
        str(SPECS_DIR / "resnet10.toml"),
        "--variant",
        "resnet12-grid",
        "--profile",
        "smoke",
        "--subset",
        "256",
        "--data",
        str(jpeg_archive),
        "--results",
        str(tmp_path),
        "--quiet",
    ]
    procs = [
        subprocess.Popen(
            _harness(*common, "--seed", str(seed)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        for seed in (0, 1)
    ]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    records = [json.loads(p.read_text()) for p in tmp_path.glob("resnet10/resnet12-grid/*.json")]
    assert sorted(r["seed"] for r in records) == [0, 1] and all(r["status"] == "complete" for r in records)


def test_a_sigkilled_run_resumes_to_the_same_result(jpeg_archive: Path, narrow_dmsresnet: Path, tmp_path: Path) -> None:
    """killed_and_resumed raises unless the SIGKILL interrupted the run (it died of the signal before writing
    its record) and the resume continued from a checkpoint: a kill that lands after the run's end, or a
    resume that starts afresh, would compare an uninterrupted run with itself."""
    from tests.benchmarks.kill_resume import killed_and_resumed, reference, same_result

    whole, span = reference(jpeg_archive, tmp_path / "whole", narrow_dmsresnet)
    delay = random.Random(int(os.environ.get("HARNESS_KILL_SEED", "0"))).uniform(0, span)  # a random kill point
    assert same_result(whole, killed_and_resumed(jpeg_archive, tmp_path / "killed", delay, narrow_dmsresnet))


def test_specs_cannot_run_code() -> None:
    files = {p.relative_to(REPO).as_posix(): p.read_text() for p in (REPO / "harness").rglob("*.py")}
    source = "\n".join(files.values())
    for forbidden in (
        r"(?<![.\w])eval\(",
        r"(?<![.\w])exec\(",
        r"__import__",
        r"pickle\.load",
        r"weights_only=False",
    ):
        assert not re.search(forbidden, source), forbidden
    # Import by name happens in one place, and only ever for a module named in the code, never in a spec
    assert [f for f, text in files.items() if "import_module" in text] == ["harness/common/lazy.py"]
    lazy_calls = re.findall(r"(?<![.\w])lazy\(([^)]*)\)", source.replace(files["harness/common/lazy.py"], ""))
    assert lazy_calls and all(re.fullmatch(r'"[a-z_.0-9]+"', arg) for arg in lazy_calls), lazy_calls
    assert source.count("torch.load(") == 1 and "weights_only=True" in source
