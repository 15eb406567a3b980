"""The layout of a sweep directory (see the package docstring) and the state of its runs."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import RunDirError
from ..train.run_dir import RunDir

PLAN_NAME = "sweep.json"
RESULTS_NAME = "results.csv"
TABLE_NAME = "table.md"
FAILURE_NAME = "failure.json"
RUNS_DIR = "runs"
PLOTS_DIR = "plots"
LOCKS_DIR = ".locks"
#: columns of results.csv that describe the run rather than measure it
TIMING_COLUMNS = ("step", "seconds", "steps_per_second")


def read_plan(out: str | Path) -> dict[str, Any]:
    path = Path(out) / PLAN_NAME
    if not path.is_file():
        raise RunDirError(f"{str(out)!r} is not a sweep directory (no {PLAN_NAME})")
    return read_json(path)


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from a file of the sweep; anything else is one line naming the file."""
    try:
        value = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise RunDirError(f"{str(path)!r} is not valid JSON; delete it to let the sweep rewrite it") from None
    if not isinstance(value, dict):
        raise RunDirError(f"{str(path)!r} does not hold a JSON object")
    return value


def failure_status(run_dir: Path) -> str | None:
    """The status recorded by a failed run (diverged, error), or None."""
    path = run_dir / FAILURE_NAME
    return str(read_json(path).get("status")) if path.is_file() else None


def run_state(run_dir: Path) -> str:
    """done (summary.json), diverged (a deterministic result), or pending."""
    if RunDir(run_dir).is_finished():
        return "done"
    return "diverged" if failure_status(run_dir) == "diverged" else "pending"
