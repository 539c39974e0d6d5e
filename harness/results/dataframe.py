"""Results as data: the specs and records a leaderboard is made of, and the leaderboard (or the raw
records) as a pandas DataFrame, which is also what `harness table --format csv|json` writes.

    >>> import harness
    >>> board = harness.load_results()                    # results/ and runs/, every spec in reproductions/
    >>> board[["report", "variant", "rule_acc_mean", "verdict"]]
    >>> runs = harness.load_results(records=True)         # one row per record
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.common.defaults import DEFAULT_RESULTS as RESULTS_DIR
from harness.common.defaults import DEFAULT_SPECS as SPECS_DIR
from harness.common.defaults import SHIPPED_RESULTS as SHIPPED_DIR
from harness.common.errors import HarnessError
from harness.results.record import Record, load_records
from harness.spec import Protocol, Spec, SpecError, is_protocol_file, load_protocol, load_specs

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


def default_spec_paths() -> list[Path]:
    """The report specs under reproductions/ and its references/, protocol files left out."""
    default = [*sorted(DEFAULT_SPECS.glob("*.toml")), *sorted(DEFAULT_SPECS.glob("references/*.toml"))]
    return [p for p in default if not is_protocol_file(p)]


def gather(
    specs: Sequence[Path] | None = None, results: Sequence[Path] | None = None, common: Path | None = None
) -> Inputs:
    """The specs (default: reproductions/ and its references/), the common protocol (default:
    reproductions/common.toml when it exists) and the records in `results` (default: results/ and runs/)."""
    paths = list(specs or default_spec_paths())
    if not paths:
        raise HarnessError(f"no specs in {DEFAULT_SPECS}/ (run from the project root, or pass the spec files)")
    loaded, problems = load_specs(paths)
    if problems:
        raise SpecError(problems)
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
    return Inputs(loaded, protocol, records, unreadable)


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
    # json, not DataFrame.to_json: that one rounds floats to 15 digits and writes "/" as "\/"
    return json.dumps(frame.astype(object).where(frame.notna(), None).to_dict(orient="records"), indent=2)


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
            return json.dumps(value)
        return ";".join(str(v) for v in value)
    if isinstance(value, int) and not isinstance(value, bool):  # else pandas makes a column with gaps float
        return str(value)
    return value
