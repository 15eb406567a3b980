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

The package: ``layout`` (the directory's files and the state of a run), ``plan`` (grid axes,
planned runs, the plan file), ``execute`` (running the runs: local processes), ``report``
(results.csv, table.md, plots), ``select`` (ranking by evidence or any score).
"""
from .execute import SweepResult, default_jobs, execute_run, run_sweep
from .layout import (FAILURE_NAME, LOCKS_DIR, PLAN_NAME, PLOTS_DIR, RESULTS_NAME, RUNS_DIR, TABLE_NAME,
                     TIMING_COLUMNS, read_plan, run_state)
from .plan import GridAxis, PlannedRun, as_axes, override, parse_grid, plan_runs
from .report import aggregate, collect_rows, format_mean_std, markdown_table, summarize
from .select import RANKING_CSV, RANKING_MD, Selection, select

__all__ = ["RANKING_CSV", "RANKING_MD", "Selection", "select", "FAILURE_NAME", "LOCKS_DIR", "PLAN_NAME", "PLOTS_DIR", "RESULTS_NAME", "RUNS_DIR", "TABLE_NAME",
           "TIMING_COLUMNS", "GridAxis", "PlannedRun", "SweepResult", "aggregate", "as_axes", "collect_rows",
           "default_jobs", "execute_run", "format_mean_std", "markdown_table", "override", "parse_grid",
           "plan_runs", "read_plan", "run_state", "run_sweep", "summarize"]
