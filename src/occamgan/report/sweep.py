"""The report of a sweep directory (see :mod:`occamgan.sweep` for its layout): the plan, the
mean ± standard deviation over seeds of every metric per grid point (from results.csv), one
plot per metric and grid key, and a row (with a link) per run.

results.csv is read with the csv module; its cells are strings, read back as JSON where they
parse (numbers, lists) and as text otherwise ("nan", names). Only finished runs (status "done")
enter the statistics.
"""
from __future__ import annotations

import csv
import json
import math
import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

from ..errors import RunDirError
from ..train.run_dir import RunDir
from . import html as h
from . import plots
from .values import as_number, fmt, fmt_mean_std, is_finite_number, parse_cell

#: the other keys of a grid point, when there are more combinations than this, are pooled into
#: one line per plot instead of a line each
MAX_LINES = 6


def sweep_names() -> tuple[str, str, str, tuple[str, ...]]:
    """(plan file, results file, runs folder, timing columns) as the sweep module names them."""
    from .. import sweep

    return (getattr(sweep, "PLAN_NAME", "sweep.json"), getattr(sweep, "RESULTS_NAME", "results.csv"),
            getattr(sweep, "RUNS_DIR", "runs"), tuple(getattr(sweep, "TIMING_COLUMNS", ("step", "seconds", "steps_per_second"))))


def is_sweep(path: str | os.PathLike) -> bool:
    return (Path(path) / sweep_names()[0]).is_file()


@dataclass
class Group:
    point: tuple[Any, ...]
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def done(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r.get("status") == "done"]


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1; nan for one value)."""
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else math.nan)


def read_plan(sweep_dir: Path) -> dict[str, Any]:
    path = sweep_dir / sweep_names()[0]
    try:
        plan = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise RunDirError(f"{str(path)!r} is not a readable sweep plan (JSON)") from None
    if not isinstance(plan, dict):
        raise RunDirError(f"{str(path)!r} does not hold a JSON object")
    return plan


def read_results(sweep_dir: Path, plan: dict[str, Any], keys: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """The rows of results.csv (cells parsed) and its header; before the first result is written,
    one pending row per planned run."""
    path = sweep_dir / sweep_names()[1]
    if path.is_file():
        with open(path, newline="", encoding="utf-8", errors="replace") as fh:
            reader = csv.DictReader(fh)
            header = list(reader.fieldnames or [])
            rows = [{k: parse_cell(v if isinstance(v, str) else "") for k, v in row.items() if k is not None}
                    for row in reader]
        return rows, header
    rows = [{"run": r.get("name", ""), "status": "pending", **(r.get("point") or {}), "seed": r.get("seed")}
            for r in plan.get("runs", []) if isinstance(r, dict)]
    return rows, ["run", "status", *keys, "seed"]


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def group_rows(rows: list[dict[str, Any]], keys: list[str]) -> list[Group]:
    groups: dict[tuple[str, ...], Group] = {}
    for row in rows:
        point = tuple(row.get(k) for k in keys)
        groups.setdefault(tuple(_key(v) for v in point), Group(point)).rows.append(row)
    return list(groups.values())


def metric_columns(rows: list[dict[str, Any]], header: list[str], keys: list[str], timing: tuple[str, ...]) -> list[str]:
    """The measured columns with a finite number in some finished run."""
    fixed = {"run", "status", "seed", *keys, *timing}
    done = [r for r in rows if r.get("status") == "done"]
    return [c for c in header if c not in fixed and any(is_finite_number(r.get(c)) for r in done)]


def _values(rows: list[dict[str, Any]], column: str) -> list[float]:
    return [as_number(r.get(column)) for r in rows if is_finite_number(r.get(column))]


def render_sweep_report(sweep_dir: str | os.PathLike, link_base: str | os.PathLike | None = None) -> str:
    """The self-contained HTML report of the sweep at ``sweep_dir``; links to the runs are
    relative to ``link_base`` (the folder the report goes to; default ``sweep_dir``)."""
    sweep_dir = Path(sweep_dir)
    if not is_sweep(sweep_dir):
        raise RunDirError(f"{str(sweep_dir)!r} is not a sweep directory (no {sweep_names()[0]})")
    _, _, runs_name, timing = sweep_names()
    plan = read_plan(sweep_dir)
    axes = [a for a in plan.get("grid", []) if isinstance(a, dict) and "key" in a]
    keys = [str(a["key"]) for a in axes]
    rows, header = read_results(sweep_dir, plan, keys)
    groups = group_rows(rows, keys)
    columns = metric_columns(rows, header, keys, timing)
    base = Path(link_base) if link_base is not None else sweep_dir
    parts = [
        ("plan", "Plan", plan_section(plan, axes, rows)),
        ("table", "Mean ± std over seeds", mean_table(groups, keys, columns)),
        ("plots", "Metrics against the grid", plots_section(rows, keys, columns)),
        ("runs", "Runs", runs_table(rows, header, keys, columns, timing, sweep_dir / runs_name, base)),
    ]
    body = "".join(h.section(anchor, title, content) for anchor, title, content in parts)
    return h.page(f"occamgan sweep {sweep_dir.resolve().name}", body, nav=[(a, t) for a, t, _ in parts])


def plan_section(plan: dict[str, Any], axes: list[dict[str, Any]], rows: list[dict[str, Any]]) -> str:
    grid = [(a["key"], ", ".join(fmt(v) for v in a.get("values", []))) for a in axes]
    counts: dict[str, int] = {}
    for row in rows:
        counts[str(row.get("status"))] = counts.get(str(row.get("status")), 0) + 1
    out = h.table(["grid key", "values"], grid) if grid else h.paragraph("no grid: seeds only")
    seeds = plan.get("seeds", [])
    out += h.table(None, [("seeds", fmt(seeds) if seeds else "?"), ("runs", str(len(rows))),
                              *((f"status {k}", str(v)) for k, v in counts.items())])
    if isinstance(plan.get("base"), dict):
        out += h.details("base configuration", h.pre(yaml.safe_dump(plan["base"], sort_keys=False)))
    return out


def mean_table(groups: list[Group], keys: list[str], columns: list[str]) -> str:
    if not columns:
        return h.paragraph("no finished run with numeric results yet")
    rows = []
    for group in groups:
        cells: list[Any] = [fmt(v) for v in group.point] + [f"{len(group.done)}/{len(group.rows)}"]
        for column in columns:
            values = _values(group.done, column)
            cells.append(fmt_mean_std(*mean_std(values)) if values else "")
        rows.append(cells)
    numeric = [False] * len(keys) + [True] * (1 + len(columns))
    note = h.paragraph("mean ± sample standard deviation (n - 1) over the finished seeds; runs = finished / planned")
    return note + h.table([*keys, "runs", *columns], rows, numeric=numeric)


def _sorted_values(values: list[Any]) -> list[Any]:
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return sorted(values)
    return values


def plot_one(rows: list[dict[str, Any]], keys: list[str], key: str, column: str) -> bytes:
    """``column`` against ``key``: the mean over seeds with std error bars, one line per
    combination of the other keys (pooled into one line when there are many)."""
    done = [r for r in rows if r.get("status") == "done"]
    xs = _sorted_values(list({_key(r.get(key)): r.get(key) for r in rows}.values()))
    others = [k for k in keys if k != key]
    lines_rows: dict[str, list[dict[str, Any]]] = {}
    for row in done:
        label = ", ".join(f"{k}={fmt(row.get(k))}" for k in others)
        lines_rows.setdefault(label, []).append(row)
    if len(lines_rows) > MAX_LINES:
        lines_rows = {f"pooled over {', '.join(others)}": done}
    lines = {}
    for label, group in lines_rows.items():
        means, stds = [], []
        for x in xs:
            values = _values([r for r in group if _key(r.get(key)) == _key(x)], column)
            mean, std = mean_std(values) if values else (None, 0.0)
            means.append(mean)
            stds.append(0.0 if std is None or math.isnan(std) else std)
        lines[label] = (means, stds)
    x_labels = [x if isinstance(x, (int, float)) and not isinstance(x, bool) else fmt(x) for x in xs]
    return plots.errorbars(x_labels, lines, f"{column} vs {key}", key, column)


def plots_section(rows: list[dict[str, Any]], keys: list[str], columns: list[str]) -> str:
    if not keys:
        return h.paragraph("no grid keys: nothing to plot against (see the table)")
    if not columns:
        return h.paragraph("no finished run with numeric results yet")
    out = ""
    for column in columns:
        out += h.heading(column)
        out += h.figures(h.image(plot_one(rows, keys, key, column), f"{column} against {key}") for key in keys)
    return out


def _href(target: Path, base: Path) -> str:
    rel = os.path.relpath(target.resolve(), base.resolve())
    return quote(Path(rel).as_posix(), safe="/=+,")


def runs_table(rows: list[dict[str, Any]], header: list[str], keys: list[str], columns: list[str],
               timing: tuple[str, ...], runs_dir: Path, base: Path) -> str:
    if not rows:
        return h.paragraph("no runs planned")
    extra = [c for c in header if c in timing]
    table_rows = []
    for row in rows:
        name = str(row.get("run", ""))
        run = RunDir(runs_dir / name)
        if name and run.report_path.is_file():
            cell: Any = h.link(_href(run.report_path, base), name)
        elif name and run.exists():
            cell = h.link(_href(run.path, base) + "/", name)
        else:
            cell = name
        values = [fmt(row.get(c)) if row.get(c) is not None else "" for c in (*columns, *extra)]
        table_rows.append([cell, fmt(row.get("status")), *(fmt(row.get(k)) for k in keys), fmt(row.get("seed")), *values])
    headers = ["run", "status", *keys, "seed", *columns, *extra]
    numeric = [False, False] + [False] * len(keys) + [True] * (1 + len(columns) + len(extra))
    return h.table(headers, table_rows, numeric=numeric)
