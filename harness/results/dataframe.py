"""Results as data: the specs and records a leaderboard is made of, and the leaderboard (or the raw
records) as a pandas DataFrame, which is also what `harness table --format csv|json` writes.

    >>> import harness
    >>> board = harness.load_results()                    # results/ and runs/, every spec in reproductions/
    >>> board[["report", "variant", "rule_acc_mean", "verdict"]]
    >>> runs = harness.load_results(records=True)         # one row per record
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.common.defaults import DEFAULT_RESULTS as RESULTS_DIR
from harness.common.defaults import DEFAULT_SPECS as SPECS_DIR
from harness.common.defaults import SHIPPED_RESULTS as SHIPPED_DIR
from harness.common.errors import HarnessError
from harness.results.record import Record, load_records
from harness.results.validate import json_text
from harness.spec import Problem, Protocol, Spec, SpecError, is_protocol_file, load_protocol, load_specs

if TYPE_CHECKING:
    import pandas as pd

    from harness.results.table import Latency

DEFAULT_SPECS, SHIPPED_RESULTS, DEFAULT_RESULTS = Path(SPECS_DIR), Path(SHIPPED_DIR), Path(RESULTS_DIR)


@dataclass(frozen=True)
class Inputs:
    """What a leaderboard, a plot or a comparison reads: specs, the common protocol, records."""

    specs: list[Spec]
    common: Protocol | None
    records: list[Record]
    problems: list[str]  # records that could not be read, one line each
    notes: list[str] = field(default_factory=list)  # spec files that took a shipped spec's place, one line each


def default_spec_paths() -> list[Path]:
    """The report specs under reproductions/ and its references/, protocol files left out."""
    default = [*sorted(DEFAULT_SPECS.glob("*.toml")), *sorted(DEFAULT_SPECS.glob("references/*.toml"))]
    return [p for p in default if not is_protocol_file(p)]


def gather(
    specs: Sequence[Path] | None = None,
    results: Sequence[Path] | None = None,
    common: Path | None = None,
    named: Sequence[Path] = (),
) -> Inputs:
    """The specs (default: reproductions/ and its references/), the common protocol (default:
    reproductions/common.toml when it exists) and the records in `results` (default: results/ and runs/).

    `named` are spec files asked for besides: they join `specs`, or, without `specs`, each takes the place
    of the shipped spec of its report (`notes` says so). One file per report: two are a SpecError."""
    loaded, notes = spec_set(specs, named)
    common_path = common or DEFAULT_SPECS / "common.toml"
    protocol = load_protocol(common_path) if common or common_path.exists() else None
    records: list[Record] = []
    unreadable: list[str] = []
    for folder in results or [SHIPPED_RESULTS, DEFAULT_RESULTS]:
        if results and not Path(folder).is_dir():  # a folder asked for by name: a typo must not read as "no runs"
            unreadable.append(f"{folder}: no such folder of result records; nothing read from it")
        found, trouble = load_records(Path(folder))
        records += found
        unreadable += trouble
    return Inputs(loaded, protocol, records, unreadable, notes)


def spec_set(specs: Sequence[Path] | None = None, named: Sequence[Path] = ()) -> tuple[list[Spec], list[str]]:
    """The specs to read, one per report, and a note for each shipped spec a named one replaced.

    `specs` (if any) and `named` are the files asked for: two of one report are an error naming both, as a
    second file of a report would add every row of it again. Without `specs`, the shipped specs are the
    rest, each in its place unless a named file of its report takes that place."""
    asked = _distinct([*(specs or []), *named])
    spelled = {path.resolve(): path for path in asked}  # a shipped file asked for by name: as it was written
    shipped = [] if specs else [spelled.get(path.resolve(), path) for path in default_spec_paths()]
    paths = _distinct([*shipped, *asked])
    if not paths:
        raise HarnessError(f"no specs in {DEFAULT_SPECS}/ (run from the project root, or pass the spec files)")
    loaded, problems = load_specs(paths)
    if problems:
        raise SpecError(problems)
    chosen = {path.resolve() for path in asked}
    given = [spec for spec in loaded if spec.path.resolve() in chosen]
    _one_file_per_report(given)
    by_name = {spec.name: spec for spec in given}
    out: list[Spec] = []
    notes: list[str] = []
    for spec in loaded:
        place = spec if spec.path.resolve() in chosen else by_name.get(spec.name, spec)
        if place is not spec:  # a shipped spec the command line replaces, in its place
            notes.append(f'{place.path} replaces {spec.path} (same report "{spec.name}")')
        if not any(place is other for other in out):
            out.append(place)
    _one_file_per_report(out)
    return out, notes


def _distinct(paths: Sequence[Path]) -> list[Path]:
    """The paths in order, each file once however it is written (`x.toml`, `./x.toml`)."""
    seen: set[Path] = set()
    out = []
    for path in map(Path, paths):
        if path.resolve() not in seen:
            seen.add(path.resolve())
            out.append(path)
    return out


def _one_file_per_report(specs: Sequence[Spec]) -> None:
    first: dict[str, Spec] = {}
    problems = []
    for spec in specs:
        if spec.name in first:
            problems.append(
                Problem(
                    str(spec.path),
                    "report.name",
                    f'report "{spec.name}" is also the report of {first[spec.name].path}; '
                    "expected one spec file per report (its rows would count twice)",
                )
            )
        first.setdefault(spec.name, spec)
    if problems:
        raise SpecError(problems)


def load_results(
    results: Sequence[str | Path] | None = None,
    specs: Sequence[str | Path] | None = None,
    *,
    records: bool = False,
    common: str | Path | None = None,
    latency: Latency = "cached",
) -> pd.DataFrame:
    """The leaderboard as a DataFrame, one row per report and variant with every column of
    `harness table --format json`; with `records=True`, the raw records instead, one row each."""
    inputs = gather(
        [Path(s) for s in specs] if specs else None,
        [Path(r) for r in results] if results else None,
        Path(common) if common else None,
    )
    if records:
        return records_frame(inputs.records)
    from harness.results.table import rows

    return leaderboard_frame(rows(inputs.specs, inputs.records, inputs.common, latency))


def leaderboard_frame(table: list[dict[str, Any]]) -> pd.DataFrame:
    """Leaderboard rows as a DataFrame; object columns keep integers integers and None as None."""
    import pandas as pd

    return pd.DataFrame(table, dtype=object)


def records_frame(found: list[Record]) -> pd.DataFrame:
    """One row per record, its fields as columns, and where it was read from (`origin`)."""
    import pandas as pd

    return pd.DataFrame([{**r.to_json(), "origin": r.origin} for r in found], dtype=object)


def to_csv(frame: pd.DataFrame) -> str:
    """One line per row; a list cell joined with ';' (the claims as `text (where; split; selection)`)."""
    return frame.map(_csv_cell).to_csv(index=False)


def to_json(frame: pd.DataFrame) -> str:
    # json, not DataFrame.to_json: that one rounds floats to 15 digits and writes "/" as "\/"; json_text: a NaN
    # nested in a cell (a list of dicts) is null too, as JSON has no NaN
    return json_text(frame.astype(object).where(frame.notna(), None).to_dict(orient="records"))


def _csv_cell(value: Any) -> Any:
    if isinstance(value, list):
        if value and isinstance(value[0], dict) and "claim_id" in value[0]:  # claim_verdicts
            return "; ".join(f"{c['claim_id']}: {c['verdict']}" for c in value)
        if value and isinstance(value[0], dict) and "target" in value[0]:  # time_to_target, per run
            return "; ".join(
                f"seed {t['seed']}: " + (f"epoch {t['epoch']}" if t["reached"] else "not reached") for t in value
            )
        if value and isinstance(value[0], dict) and "text" in value[0]:  # claims
            return "; ".join(f"{c['text']} ({'/'.join(c['stated_in'])}; {c['split']}; {c['selection']})" for c in value)
        if value and isinstance(value[0], dict):
            return json_text(value, indent=None)
        return ";".join(str(v) for v in value)
    if isinstance(value, int) and not isinstance(value, bool):  # else pandas makes a column with gaps float
        return str(value)
    return value
