"""What a sweep reports: results.csv (one row per run), table.md (mean +- std over seeds per grid
point) and one plot per metric, rebuilt from the run directories at any time."""
from __future__ import annotations

import csv
import io
import json
import math
import os
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_text
from ..train.run_dir import RunDir
from .layout import PLOTS_DIR, RESULTS_NAME, RUNS_DIR, TABLE_NAME, TIMING_COLUMNS, failure_status, read_plan
from .plan import _slug


def final_losses(run_dir: Path) -> dict[str, Any]:
    """The last logged training losses (``loss_*`` of the last metrics.jsonl record that has
    them), as ``final_loss_*``."""
    last: dict[str, Any] = {}
    for record in RunDir(run_dir).read_metrics():
        losses = {k: v for k, v in record.items() if k.startswith("loss")}
        if losses:
            last = losses
    return {f"final_{k}": v for k, v in last.items()}


def collect_rows(out: Path) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """One row per planned run; returns (rows, grid keys, measured columns in first-seen order)."""
    plan = read_plan(out)
    keys = [a["key"] for a in plan["grid"]]
    rows, measured = [], []
    for run in plan["runs"]:
        run_dir = Path(out) / RUNS_DIR / run["name"]
        row: dict[str, Any] = {"run": run["name"], "status": "pending", **run["point"], "seed": run["seed"]}
        files = RunDir(run_dir)
        values: dict[str, Any] = {}
        if files.is_finished():
            summary = files.read_summary()
            row["status"] = "done"
            values.update({k: v for k, v in summary.get("metrics", {}).items() if not isinstance(v, dict)})
            values.update(final_losses(run_dir))
            values.update({k: summary.get(k) for k in TIMING_COLUMNS})
        elif failure_status(run_dir) is not None:
            row["status"] = failure_status(run_dir)
        for k in values:
            if k not in measured:
                measured.append(k)
        row.update(values)
        rows.append(row)
    return rows, keys, measured


def _cell(value: Any) -> Any:
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return "" if value is None else value


def write_results_csv(path: Path, rows: list[dict[str, Any]], keys: list[str], measured: list[str]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["run", "status", *keys, "seed", *measured], extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row.get(k)) for k in writer.fieldnames})
    atomic_write_text(path, buf.getvalue())


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def table_columns(rows: list[dict[str, Any]], measured: list[str]) -> list[str]:
    """Measured columns with a finite number in some finished run (timing columns excluded)."""
    return [c for c in measured if c not in TIMING_COLUMNS and any(_is_number(r.get(c)) for r in rows)]


@dataclass
class Aggregate:
    point: tuple[Any, ...]
    n_runs: int
    n_done: int
    #: column -> (mean, sample standard deviation (ddof 1; nan for one value), count)
    stats: dict[str, tuple[float, float, int]]


def aggregate(rows: list[dict[str, Any]], keys: list[str], columns: list[str]) -> list[Aggregate]:
    """Mean and sample standard deviation over seeds of every column, per grid point (finished
    runs only, in plan order)."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(json.dumps(row[k]) for k in keys), []).append(row)
    result = []
    for group in groups.values():
        done = [r for r in group if r["status"] == "done"]
        stats = {}
        for c in columns:
            vals = [float(r[c]) for r in done if _is_number(r.get(c))]
            if vals:
                std = statistics.stdev(vals) if len(vals) > 1 else math.nan
                stats[c] = (statistics.fmean(vals), std, len(vals))
        result.append(Aggregate(tuple(group[0][k] for k in keys), len(group), len(done), stats))
    return result


def format_mean_std(mean: float, std: float) -> str:
    """4 significant digits for the mean, 2 for the standard deviation."""
    return f"{mean:.4g}" if math.isnan(std) else f"{mean:.4g} ± {std:.2g}"


def markdown_table(aggs: list[Aggregate], keys: list[str], columns: list[str]) -> str:
    header = [*keys, "runs", *columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for agg in aggs:
        runs = f"{agg.n_done}/{agg.n_runs}"
        cells = [_cell(v) for v in agg.point] + [runs]
        for c in columns:
            cells.append(format_mean_std(*agg.stats[c][:2]) if c in agg.stats else "")
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def write_table(path: Path, plan: dict[str, Any], aggs: list[Aggregate], keys: list[str], columns: list[str]) -> None:
    grid = " ".join(f"{a['key']}={','.join(json.dumps(v) for v in a['values'])}" for a in plan["grid"]) or "(none)"
    seeds = plan["seeds"]
    text = (f"Sweep over {grid}; seeds {', '.join(map(str, seeds))}.\n"
            f"Cells: mean ± sample standard deviation (n - 1) over the finished seeds; "
            f"runs = finished / planned. final_loss_* = last logged training loss.\n\n")
    atomic_write_text(path, text + markdown_table(aggs, keys, columns))


def plot_metrics(out_dir: Path, rows: list[dict[str, Any]], keys: list[str], columns: list[str]) -> list[Path]:
    """One PNG per column: the metric against the first grid key, one line (mean +- std, with
    the individual seeds as dots) per combination of the other keys."""
    from ..plots import new_figure

    out_dir.mkdir(parents=True, exist_ok=True)
    x_key, other = (keys[0], keys[1:]) if keys else (None, [])
    x_values = list(dict.fromkeys(json.dumps(r[x_key]) for r in rows)) if x_key else ['"base"']
    numeric_x = all(_is_number(json.loads(v)) for v in x_values)
    done = [r for r in rows if r["status"] == "done"]
    series: dict[tuple, list[dict[str, Any]]] = {}
    for r in done:
        series.setdefault(tuple(r[k] for k in other), []).append(r)
    paths = []
    for column in columns:
        fig, ax = new_figure((5, 3.4), dpi=100)
        for label, group in series.items():
            xs, means, stds = [], [], []
            for i, xv in enumerate(x_values):
                vals = [float(r[column]) for r in group if _is_number(r.get(column))
                        and (x_key is None or json.dumps(r[x_key]) == xv)]
                if not vals:
                    continue
                pos = json.loads(xv) if numeric_x else i
                ax.scatter([pos] * len(vals), vals, s=8, alpha=0.35, color="gray", zorder=1)
                xs.append(pos)
                means.append(statistics.fmean(vals))
                stds.append(statistics.stdev(vals) if len(vals) > 1 else 0.0)
            name = ", ".join(f"{k}={v}" for k, v in zip(other, label)) or None
            ax.errorbar(xs, means, yerr=stds, marker="o", capsize=3, label=name, zorder=2)
        if not numeric_x:
            ax.set_xticks(range(len(x_values)), [json.loads(v) if x_key else "base" for v in x_values])
        ax.set_xlabel(x_key or "")
        ax.set_ylabel(column)
        if other:
            ax.legend(fontsize=7)
        fig.tight_layout()
        path = out_dir / f"{_slug(column)}.png"
        fig.savefig(path)
        paths.append(path)
    return paths


def summarize(out: str | os.PathLike, plots: bool = True) -> list[dict[str, Any]]:
    """(Re)write results.csv, table.md and (optionally) plots/ from the sweep's run directories."""
    out = Path(out)
    plan = read_plan(out)
    rows, keys, measured = collect_rows(out)
    write_results_csv(out / RESULTS_NAME, rows, keys, measured)
    columns = table_columns(rows, measured)
    write_table(out / TABLE_NAME, plan, aggregate(rows, keys, columns), keys, columns)
    if plots:
        plot_metrics(out / PLOTS_DIR, rows, keys, columns)
    return rows
