"""Running a sweep: each planned run trained (or resumed, or skipped when finished) in a pool of
local processes, one torch thread each, or as Ray tasks (ray_backend.py); failures are recorded
in the run, never raised."""
from __future__ import annotations

import copy
import fcntl
import json
import os
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from ..atomic import atomic_write_text
from ..config import Config
from ..errors import CheckpointError, ConfigError, TrainingError
from ..train.run_dir import RunDir
from .layout import FAILURE_NAME, LOCKS_DIR, RESULTS_NAME, RUNS_DIR, TABLE_NAME, run_state
from .plan import GridAxis, as_axes, plan_document, plan_runs, prepare_out
from .report import summarize

Log = Callable[[str], None]
#: where the runs of a sweep execute: a pool of local processes, or Ray tasks (ray_backend.py)
BACKENDS = ("local", "ray")


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


def execute_run(base: dict[str, Any], run: dict[str, Any], runs_dir: str, threads: int | None = 1) -> dict[str, Any]:
    """Train one planned run unless it is finished; never raises for a failed run (the failure
    is recorded in the run directory and returned). Safe to call in a worker process."""
    import torch

    from ..api import train

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
    has_checkpoint = RunDir(run_dir).has_checkpoint()
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
    atomic_write_text(run_dir / FAILURE_NAME, json.dumps({"status": status, "message": message}))
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
              log: Log | None = None, plots: bool = True, backend: str = "local", address: str | None = None,
              gpus_per_run: float = 0.0, cpus_per_run: float = 1.0) -> SweepResult:
    """Run the product of ``grid`` and ``seeds`` on the base ``config`` (+ ``overrides``) in
    ``jobs`` processes (default: the core count, one torch thread each), skipping finished runs;
    then write results.csv, table.md and plots. Failed runs are reported, not raised.

    ``backend="ray"`` submits each run as a Ray task instead (:mod:`.ray_backend`: the cluster at
    ``address``, else a local one; ``gpus_per_run``/``cpus_per_run`` per task; ``jobs`` unused)."""
    from ..api import resolve_config

    log = log or (lambda msg: None)
    if jobs is not None and jobs < 1:
        raise ConfigError(f"--jobs must be >= 1 (got {jobs})")
    if backend not in BACKENDS:
        raise ConfigError(f"--backend must be one of {', '.join(BACKENDS)} (got {backend!r})")
    if backend == "ray":
        from .ray_backend import check_resources, import_ray

        import_ray()  # before anything is written: a missing extra is a one-line error
        check_resources(gpus_per_run, cpus_per_run)
    base = resolve_config(config, overrides)
    axes = as_axes(grid)
    runs = plan_runs(base, axes, seeds)
    out = Path(out)
    plan = plan_document(base, axes, runs)
    prepare_out(out, plan)
    runs_dir = out / RUNS_DIR
    pending = [r for r in plan["runs"] if run_state(runs_dir / r["name"]) == "pending"]
    jobs = min(jobs or default_jobs(), max(len(pending), 1))
    where = "as Ray tasks" if backend == "ray" else f"in {jobs} process(es)"
    log(f"{len(runs)} runs, {len(runs) - len(pending)} finished before; {len(pending)} to run {where}")
    counts = {"done": 0, "diverged": 0, "error": 0, "skipped": len(runs) - len(pending)}

    def record(result: dict[str, Any], k: int) -> None:
        counts["skipped" if result["skipped"] else result["status"]] += 1
        note = "" if result["status"] == "done" else f" ({result.get('message', '')})"
        log(f"[{k}/{len(pending)}] {result['name']}: {'finished elsewhere' if result['skipped'] else result['status']}{note}")
        summarize(out, plots=False)

    if backend == "ray":
        if pending:
            from .ray_backend import run_on_ray

            run_on_ray(execute_run, plan["base"], pending, runs_dir, record, address=address,
                       gpus_per_run=gpus_per_run, cpus_per_run=cpus_per_run, log=log)
    elif jobs == 1:
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
