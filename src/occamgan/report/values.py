"""Reading logged values: numbers from JSON/CSV cells (non-finite floats are logged as strings),
series over steps, and one readable format for every number of a report."""
from __future__ import annotations

import json
import math
from typing import Any, Iterable

SHARPNESS_PREFIX = "top_eigenvalue"  # top_eigenvalue, top_eigenvalue_d, top_eigenvalues(_d)
EVAL_PREFIX = "eval/"


def as_number(value: Any) -> float | None:
    """A float for numbers and numeric strings ("nan", "inf", "1.5"), else None (bools, text,
    lists and dicts are not numbers)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def is_finite_number(value: Any) -> bool:
    number = as_number(value)
    return number is not None and math.isfinite(number)


def fmt(value: Any) -> str:
    """Numbers with 6 significant digits, lists as comma-separated numbers, other values as
    compact JSON (strings as themselves)."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return ", ".join(fmt(v) for v in value)
    return json.dumps(value, sort_keys=True, default=str)


def fmt_mean_std(mean: float, std: float) -> str:
    """4 significant digits for the mean, 2 for the standard deviation (omitted when it is
    undefined: one value)."""
    return f"{mean:.4g}" if math.isnan(std) else f"{mean:.4g} ± {std:.2g}"


def series(records: Iterable[dict[str, Any]], keep) -> dict[str, tuple[list[float], list[float]]]:
    """``{key: (steps, values)}`` for every key with ``keep(key)`` true, in first-seen order,
    keeping the records where the value is a finite number and ``step`` is a number."""
    out: dict[str, tuple[list[float], list[float]]] = {}
    for record in records:
        step = as_number(record.get("step"))
        if step is None or not math.isfinite(step):
            continue
        for key, value in record.items():
            if key == "step" or not keep(key):
                continue
            number = as_number(value)
            if number is None or not math.isfinite(number):
                continue
            xs, ys = out.setdefault(key, ([], []))
            xs.append(step)
            ys.append(number)
    return out


def parse_cell(text: str) -> Any:
    """A results.csv cell back to a value: JSON (numbers, booleans, lists) where it parses, the
    text itself otherwise; the empty cell is None."""
    if text == "":
        return None
    try:
        return json.loads(text)
    except (json.JSONDecodeError, ValueError):
        return text
