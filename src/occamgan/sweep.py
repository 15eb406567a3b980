"""Sweeps: the product of config grids and seeds, run in parallel processes, resumable, summarised.

    from occamgan.sweep import run_sweep
    result = run_sweep("configs/gaussian.yaml", ["model.depth=0,1", "model.latent_dim=1,2,3,5"],
                       seeds=5, out="sweeps/gaussian")
    print(result.table_path.read_text())

Layout of a sweep directory ``OUT``::

    OUT/sweep.json      the plan: base config, grid axes, seeds, one entry per run (its overrides)
    OUT/runs/<name>/    one ordinary run directory per (grid point, seed) (``occamgan train``)
    OUT/.locks/<name>   held by the process that trains the run (advisory file lock)
    OUT/results.csv     one row per run: status, grid values, seed, metrics, final losses, timing
    OUT/table.md        mean +- sample standard deviation over seeds of every metric, per grid point
    OUT/plots/<metric>.png  each metric against the grid (one line per value of the other axes)

A run is finished when its ``summary.json`` exists (or it diverged, which is a result too); a
rerun of the same command skips finished runs, resumes killed ones from their last checkpoint
(exactly, see :mod:`occamgan.train.checkpoint`) and starts the others afresh. Every config of the
sweep is validated before any run starts. Seeds are ``base seed + i`` for i < ``seeds``.
"""
from __future__ import annotations

import copy
import csv
import fcntl
import io
import itertools
import json
import math
import os
import re
import statistics
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import yaml

from .config import Config, build_config
from .errors import CheckpointError, ConfigError, RunDirError, TrainingError

PLAN_NAME = "sweep.json"
RESULTS_NAME = "results.csv"
TABLE_NAME = "table.md"
FAILURE_NAME = "failure.json"
LOCKS_DIR = ".locks"
#: columns of results.csv that describe the run rather than measure it
TIMING_COLUMNS = ("step", "seconds", "steps_per_second")

Log = Callable[[str], None]


# --------------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class GridAxis:
    """One ``--grid KEY=V1,V2,...``: a dotted config key and its values (YAML scalars/lists)."""

    key: str
    values: tuple[Any, ...]


def parse_grid(item: str) -> GridAxis:
    """``"model.latent_dim=1,2,3,5"`` -> GridAxis("model.latent_dim", (1, 2, 3, 5)).

    The values are read as one YAML flow sequence, so lists work too:
    ``train.betas=[0.5,0.9],[0.0,0.99]``."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key or not raw.strip():
        raise ConfigError(f"--grid {item!r}: expected KEY=V1,V2,..., e.g. model.latent_dim=1,2,3,5")
    if key == "seed":
        raise ConfigError("--grid seed=...: seeds are set with --seeds N (base seed + 0..N-1)")
    try:
        values = yaml.safe_load(f"[{raw}]")
    except yaml.YAMLError:
        raise ConfigError(f"--grid {item!r}: values must be comma-separated YAML scalars or lists") from None
    if any(v is None for v in values):
        raise ConfigError(f"--grid {item!r}: empty value in the list")
    if len({json.dumps(v) for v in values}) != len(values):
        raise ConfigError(f"--grid {item!r}: repeated value")
    return GridAxis(key, tuple(values))


def as_axes(grid: Sequence[str | GridAxis] | dict[str, Sequence[Any]]) -> list[GridAxis]:
    if isinstance(grid, dict):
        axes = [GridAxis(k, tuple(v)) for k, v in grid.items()]
    else:
        axes = [g if isinstance(g, GridAxis) else parse_grid(g) for g in grid]
    keys = [a.key for a in axes]
    for key in keys:
        if keys.count(key) > 1:
            raise ConfigError(f"--grid {key}: given twice; list all its values in one --grid")
    for a in axes:
        if not a.values:
            raise ConfigError(f"--grid {a.key}: no values")
    return axes


def override(key: str, value: Any) -> str:
    """A ``--set`` override whose value reads back exactly (JSON is valid YAML)."""
    return f"{key}={json.dumps(value)}"


@dataclass(frozen=True)
class PlannedRun:
    name: str
    point: dict[str, Any]
    seed: int
    #: overrides of the base config that make this run (grid values, then the seed)
    overrides: list[str]


def _slug(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", text).strip("_") or "_"


def plan_runs(base: Config, axes: list[GridAxis], seeds: int) -> list[PlannedRun]:
    """Every (grid point, seed), each config validated now (a bad key or value is a
    :class:`ConfigError` before anything runs). Runs are ordered seed-major, so the first
    seeds of every grid point finish first."""
    if seeds < 1:
        raise ConfigError(f"--seeds must be >= 1 (got {seeds})")
    tree = base.to_dict()
    points = [dict(zip([a.key for a in axes], combo)) for combo in itertools.product(*[a.values for a in axes])]
    runs, names = [], set()
    for i in range(seeds):
        seed = base.seed + i
        for point in points:
            overrides = [override(k, v) for k, v in point.items()] + [f"seed={seed}"]
            build_config(copy.deepcopy(tree), overrides)
            name = "__".join([f"{k}={_slug(v)}" for k, v in point.items()] + [f"seed={seed}"])
            if name in names:  # two values with the same slug
                name = f"{name}__{len(runs)}"
            names.add(name)
            runs.append(PlannedRun(name, point, seed, overrides))
    return runs


def _plan_document(base: Config, axes: list[GridAxis], runs: list[PlannedRun]) -> dict[str, Any]:
    return {
        "base": base.to_dict(),
        "grid": [{"key": a.key, "values": list(a.values)} for a in axes],
        "seeds": sorted({r.seed for r in runs}),
        "runs": [{"name": r.name, "point": r.point, "seed": r.seed, "overrides": r.overrides} for r in runs],
    }


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _with_current_defaults(saved: dict[str, Any]) -> dict[str, Any]:
    """The saved plan with its base config passed through today's schema, so that a key added to
    the schema since (at its default value, which keeps old runs' meaning) does not orphan a sweep."""
    try:
        saved["base"] = build_config(copy.deepcopy(saved["base"])).to_dict()
    except (ConfigError, KeyError, TypeError):
        pass  # a base the schema no longer accepts is a different sweep: the comparison says so
    return saved


def _prepare_out(out: Path, plan: dict[str, Any]) -> None:
    """Create OUT with its plan, or check that an existing OUT holds this very sweep."""
    plan_path = out / PLAN_NAME
    if plan_path.is_file():
        saved = _with_current_defaults(json.loads(plan_path.read_text()))
        if saved != json.loads(json.dumps(plan)):
            raise RunDirError(
                f"{str(out)!r} holds a different sweep (base config, grid or seeds differ); "
                f"rerun the original command to resume it, or choose another --out"
            )
        return
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RunDirError(f"{str(out)!r} exists and is not a sweep directory (no {PLAN_NAME}); choose another --out")
    (out / "runs").mkdir(parents=True, exist_ok=True)
    (out / LOCKS_DIR).mkdir(exist_ok=True)
    _write_atomic(plan_path, json.dumps(plan, indent=1))


# --------------------------------------------------------------------------- one run
@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock, released by the OS if the holder dies: a rerun never trains
    a run that a leftover worker of a killed sweep is still finishing."""
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def run_state(run_dir: Path) -> str:
    """done (summary.json), diverged (a deterministic result), or pending."""
    if (run_dir / "summary.json").is_file():
        return "done"
    failure = run_dir / FAILURE_NAME
    if failure.is_file() and json.loads(failure.read_text()).get("status") == "diverged":
        return "diverged"
    return "pending"


def execute_run(base: dict[str, Any], run: dict[str, Any], runs_dir: str, threads: int | None = 1) -> dict[str, Any]:
    """Train one planned run unless it is finished; never raises for a failed run (the failure
    is recorded in the run directory and returned). Safe to call in a worker process."""
    import torch

    from .api import train

    run_dir = Path(runs_dir) / run["name"]
    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    start = time.perf_counter()
    try:
        with _locked(Path(runs_dir).parent / LOCKS_DIR / run["name"]):
            state = run_state(run_dir)
            if state != "pending":
                return {"name": run["name"], "status": state, "skipped": True}
            status, message = _train_or_resume(train, copy.deepcopy(base), run["overrides"], run_dir)
    finally:
        torch.set_num_threads(old_threads)
    return {"name": run["name"], "status": status, "skipped": False, "message": message,
            "seconds": time.perf_counter() - start}


def _train_or_resume(train: Callable, base: dict[str, Any], overrides: list[str], run_dir: Path) -> tuple[str, str]:
    """Resume a killed run from its checkpoint (exact), else start it afresh (overwriting
    whatever a run killed before its first checkpoint left)."""
    (run_dir / FAILURE_NAME).unlink(missing_ok=True)
    has_checkpoint = (run_dir / "checkpoints" / "last.pt").is_file()
    try:
        try:
            train(base, overrides=overrides, out=run_dir, resume=has_checkpoint, overwrite=not has_checkpoint,
                  progress=False)
        except CheckpointError:  # unreadable leftovers of a killed run: start again
            train(base, overrides=overrides, out=run_dir, overwrite=True, progress=False)
        return "done", ""
    except TrainingError as exc:
        status, message = "diverged", str(exc)
    except Exception as exc:  # recorded, and retried by the next rerun
        status, message = "error", f"{type(exc).__name__}: {exc}"
    run_dir.mkdir(parents=True, exist_ok=True)
    _write_atomic(run_dir / FAILURE_NAME, json.dumps({"status": status, "message": message}))
    return status, message


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


# --------------------------------------------------------------------------- the sweep
@dataclass
class SweepResult:
    out: Path
    rows: list[dict[str, Any]]
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def results_path(self) -> Path:
        return self.out / RESULTS_NAME

    @property
    def table_path(self) -> Path:
        return self.out / TABLE_NAME


def default_jobs() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def run_sweep(config: Config | dict[str, Any] | str | os.PathLike | None,
              grid: Sequence[str | GridAxis] | dict[str, Sequence[Any]], seeds: int,
              out: str | os.PathLike, jobs: int | None = None, overrides: list[str] | None = None,
              log: Log | None = None, plots: bool = True) -> SweepResult:
    """Run the product of ``grid`` and ``seeds`` on the base ``config`` (+ ``overrides``) in
    ``jobs`` processes (default: the core count, one torch thread each), skipping finished runs;
    then write results.csv, table.md and plots. Failed runs are reported, not raised."""
    from .api import resolve_config

    log = log or (lambda msg: None)
    if jobs is not None and jobs < 1:
        raise ConfigError(f"--jobs must be >= 1 (got {jobs})")
    base = resolve_config(config, overrides)
    axes = as_axes(grid)
    runs = plan_runs(base, axes, seeds)
    out = Path(out)
    plan = _plan_document(base, axes, runs)
    _prepare_out(out, plan)
    runs_dir = out / "runs"
    pending = [r for r in plan["runs"] if run_state(runs_dir / r["name"]) == "pending"]
    jobs = min(jobs or default_jobs(), max(len(pending), 1))
    log(f"{len(runs)} runs, {len(runs) - len(pending)} finished before; {len(pending)} to run in {jobs} process(es)")
    counts = {"done": 0, "diverged": 0, "error": 0, "skipped": len(runs) - len(pending)}

    def record(result: dict[str, Any], k: int) -> None:
        counts["skipped" if result["skipped"] else result["status"]] += 1
        note = "" if result["status"] == "done" else f" ({result.get('message', '')})"
        log(f"[{k}/{len(pending)}] {result['name']}: {'finished elsewhere' if result['skipped'] else result['status']}{note}")
        summarize(out, plots=False)

    if jobs == 1:
        for k, run in enumerate(pending, 1):
            record(execute_run(plan["base"], run, str(runs_dir)), k)
    else:
        _run_parallel(plan["base"], pending, runs_dir, jobs, record)
    rows = summarize(out, plots=plots)
    return SweepResult(out, rows, counts)


def _run_parallel(base: dict[str, Any], pending: list[dict[str, Any]], runs_dir: Path, jobs: int,
                  record: Callable[[dict[str, Any], int], None]) -> None:
    # spawn: fresh interpreters (no forked torch/OpenMP state; works with CUDA); each worker is
    # reused for many runs, so the import cost is paid once per process
    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn"), initializer=_init_worker) as pool:
        futures = {pool.submit(execute_run, base, run, str(runs_dir)) for run in pending}
        k = 0
        try:
            while futures:
                finished, futures = wait(futures, return_when=FIRST_COMPLETED)
                for fut in finished:
                    k += 1
                    record(fut.result(), k)
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise


# --------------------------------------------------------------------------- results
def read_plan(out: Path) -> dict[str, Any]:
    path = Path(out) / PLAN_NAME
    if not path.is_file():
        raise RunDirError(f"{str(out)!r} is not a sweep directory (no {PLAN_NAME})")
    return json.loads(path.read_text())


def final_losses(run_dir: Path) -> dict[str, Any]:
    """The last logged training losses (``loss_*`` of the last metrics.jsonl record that has
    them), as ``final_loss_*``."""
    last: dict[str, Any] = {}
    path = run_dir / "metrics.jsonl"
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
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
        run_dir = Path(out) / "runs" / run["name"]
        row: dict[str, Any] = {"run": run["name"], "status": "pending", **run["point"], "seed": run["seed"]}
        summary_path, failure_path = run_dir / "summary.json", run_dir / FAILURE_NAME
        values: dict[str, Any] = {}
        if summary_path.is_file():
            summary = json.loads(summary_path.read_text())
            row["status"] = "done"
            values.update(summary.get("metrics", {}))
            values.update(final_losses(run_dir))
            values.update({k: summary.get(k) for k in TIMING_COLUMNS})
        elif failure_path.is_file():
            row["status"] = json.loads(failure_path.read_text())["status"]
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
    _write_atomic(path, buf.getvalue())


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
    _write_atomic(path, text + markdown_table(aggs, keys, columns))


def plot_metrics(out_dir: Path, rows: list[dict[str, Any]], keys: list[str], columns: list[str]) -> list[Path]:
    """One PNG per column: the metric against the first grid key, one line (mean +- std, with
    the individual seeds as dots) per combination of the other keys."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
        fig, ax = plt.subplots(figsize=(5, 3.4), dpi=100)
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
        plt.close(fig)
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
        plot_metrics(out / "plots", rows, keys, columns)
    return rows
