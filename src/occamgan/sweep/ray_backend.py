"""Running a sweep's runs as Ray tasks, on an existing cluster (``address``) or on a local one
started for the sweep (``occamgan sweep ... --backend ray``; ``pip install "occamgan[ray]"``).

Each planned run is one task calling :func:`~occamgan.sweep.execute.execute_run`, the very
function the local pool runs: the same per-run lock, skip-finished check, resume from the last
checkpoint and failure record, so results.csv, table.md and the plots come out as with the
local backend, and a sweep may be continued with either backend. The sweep directory must be
on a file system that every Ray node sees at the same path (on one machine it always is).

A task asks Ray for ``cpus_per_run`` CPUs (the run's torch threads) and ``gpus_per_run`` GPUs
(fractions share a GPU; Ray sets CUDA_VISIBLE_DEVICES, so ``train.device=auto`` picks it). A
task that dies (a worker or node lost) is recorded as an error of its run, like a failed run,
and retried by the next rerun of the sweep.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

from ..errors import ConfigError

Record = Callable[[dict[str, Any], int], None]
#: execute.execute_run(base, run, runs_dir, threads) -> result (passed in: execute imports this module)
Task = Callable[..., dict[str, Any]]


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError('--backend ray needs Ray: pip install "occamgan[ray]" (or "ray[default]")') from None
    return ray


def check_resources(gpus_per_run: float, cpus_per_run: float) -> None:
    if not (math.isfinite(cpus_per_run) and cpus_per_run > 0):
        raise ConfigError(f"--cpus-per-run must be > 0 (got {cpus_per_run})")
    if not (math.isfinite(gpus_per_run) and gpus_per_run >= 0):
        raise ConfigError(f"--gpus-per-run must be >= 0 (got {gpus_per_run})")


def run_on_ray(execute_run: Task, base: dict[str, Any], pending: list[dict[str, Any]], runs_dir: Path,
               record: Record, address: str | None = None, gpus_per_run: float = 0.0, cpus_per_run: float = 1.0,
               log: Callable[[str], None] | None = None) -> None:
    """Submit every pending run as a Ray task (``execute_run``) and ``record`` each result as it finishes. Joins
    the cluster at ``address`` ("auto": the one this node belongs to), else starts a local one
    that is shut down afterwards; a Ray session the caller already started is used as it is."""
    ray = import_ray()
    check_resources(gpus_per_run, cpus_per_run)
    log = log or (lambda msg: None)
    started_here = not ray.is_initialized()
    if started_here:
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        except ConnectionError as exc:
            raise ConfigError(f"--address {address!r}: no Ray cluster there ({exc})") from None
    try:
        resources = ray.cluster_resources()
        log(f"ray: {resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} GPUs; "
            f"{cpus_per_run:g} CPU(s) and {gpus_per_run:g} GPU(s) per run")
        if gpus_per_run > resources.get("GPU", 0) or cpus_per_run > resources.get("CPU", 0):
            raise ConfigError(f"the Ray cluster has {resources.get('CPU', 0):g} CPUs and {resources.get('GPU', 0):g} "
                              f"GPUs: a run asking for {cpus_per_run:g} CPUs and {gpus_per_run:g} GPUs never starts")
        task = ray.remote(num_cpus=cpus_per_run, num_gpus=gpus_per_run, max_retries=0)(execute_run)
        threads = max(1, int(cpus_per_run))
        refs = {task.remote(base, run, str(runs_dir), threads): run for run in pending}
        k = 0
        try:
            while refs:
                done, _ = ray.wait(list(refs), num_returns=1)
                for ref in done:
                    run = refs.pop(ref)
                    k += 1
                    record(_result(ray, ref, run), k)
        except BaseException:
            for ref in refs:
                ray.cancel(ref, force=True)
            raise
    finally:
        if started_here:
            ray.shutdown()


def _result(ray: Any, ref: Any, run: dict[str, Any]) -> dict[str, Any]:
    """The task's result; a task that died is a failed run (its message recorded, rerun later)."""
    try:
        return ray.get(ref)
    except Exception as exc:  # RayTaskError, WorkerCrashedError, NodeDiedError, ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return {"name": run["name"], "status": "error", "skipped": False,
                "message": f"ray task failed: {type(exc).__name__}: {first[:300]}"}
