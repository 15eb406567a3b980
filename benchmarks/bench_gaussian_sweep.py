"""The paper's full Gaussian sweep against the clock (issue 3, item 10): 8 settings (model.depth in
{0, 2}, the authors' --mlp_depth {0, 1}, x model.latent_dim in {1, 2, 3, 5}) x 5 seeds x 4000
steps (1000 epochs of 200 points, batch 50), configs/gaussian.yaml (the authors' protocol),
through ``occamgan.sweep.run_sweep`` with 2 worker processes (one torch thread each). Goal: under
5 minutes on 2 cores. (``--seeds N`` of a sweep gives seeds 0..N-1 with the config's data draw:
the timing is that of the paper's sweep, whose seeds docs/experiments/gaussian.py sets one by one.)

Reports the wall time, the CPU time of all processes (this one and its reaped workers; on a
shared machine the wall time depends on the other jobs, the CPU time much less), CPU time / 2
(the wall time 2 free cores would need), the load average before and after, and the median
training-loop rate of one process (steps per CPU second, ``--loop-steps`` steps, no evaluation).

    OMP_NUM_THREADS=1 python benchmarks/bench_gaussian_sweep.py [--jobs 2] [--keep sweeps/gaussian] [--out FILE]

The loop rate of an older source tree, for before/after comparisons of the training step:

    git archive 4551a6b src | tar -x -C /tmp/before
    OMP_NUM_THREADS=1 PYTHONPATH=/tmp/before/src python benchmarks/bench_gaussian_sweep.py --loop-only --loop-reps 5
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "gaussian.yaml"
GRID = ["model.depth=0,2", "model.latent_dim=1,2,3,5"]
SEEDS = 5
GOAL_SECONDS = 300.0


def cpu_seconds() -> float:
    """User + system CPU time of this process and of its finished children."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def loop_rate(steps: int, seed: int) -> float:
    """Training-loop steps per CPU second of one process on one thread (latent 2, depth 1)."""
    from occamgan.build import build_experiment
    from occamgan.config import load_config
    from occamgan.train.trainer import Trainer

    cfg = load_config(CONFIG, [f"train.steps={steps}", f"train.checkpoint_every={steps}", f"seed={seed}"])
    exp = build_experiment(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(exp, Path(tmp), progress=False)
        start = time.process_time()
        trainer.fit()
        return steps / (time.process_time() - start)


def time_sweep(out: Path, jobs: int) -> dict:
    from occamgan.sweep import run_sweep

    load_before = os.getloadavg()
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    result = run_sweep(CONFIG, GRID, SEEDS, out, jobs=jobs, log=lambda m: print(m, file=sys.stderr, flush=True))
    wall, cpu = time.perf_counter() - wall0, cpu_seconds() - cpu0
    return {"wall_seconds": wall, "cpu_seconds": cpu, "cpu_seconds_per_core": cpu / jobs, "jobs": jobs,
            "runs": len(result.rows), "trained": result.counts["done"], "skipped": result.counts["skipped"],
            "load_before": load_before, "load_after": os.getloadavg(), "table": result.table_path.read_text()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--keep", type=Path, default=None, help="sweep directory to keep (must not hold a finished sweep)")
    ap.add_argument("--loop-steps", type=int, default=1000)
    ap.add_argument("--loop-reps", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None, help="also write the figures as JSON")
    ap.add_argument("--loop-only", action="store_true",
                    help="only the training-loop rate (e.g. of another source tree on PYTHONPATH)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rates = [loop_rate(args.loop_steps, seed) for seed in range(args.loop_reps)]
    if args.loop_only:
        print(f"training loop, one process, one thread: median {statistics.median(rates):.0f} steps per CPU "
              f"second over {args.loop_reps} x {args.loop_steps} steps (min {min(rates):.0f}, max {max(rates):.0f})")
        return
    with tempfile.TemporaryDirectory() as tmp:
        sweep_dir = args.keep or Path(tmp) / "sweep"
        figures = time_sweep(sweep_dir, args.jobs)
    if figures["skipped"]:
        raise SystemExit(f"{sweep_dir} already held {figures['skipped']} finished runs: the timing is void")
    figures["loop_steps_per_cpu_second"] = {"median": statistics.median(rates), "min": min(rates), "max": max(rates)}
    print(figures.pop("table"))
    print(f"full Gaussian sweep: {figures['runs']} runs x 4000 steps in {figures['jobs']} processes")
    print(f"  wall time {figures['wall_seconds']:.1f} s (goal < {GOAL_SECONDS:.0f} s); "
          f"load average {figures['load_before'][0]:.1f} before, {figures['load_after'][0]:.1f} after (1 min)")
    print(f"  CPU time {figures['cpu_seconds']:.1f} s = {figures['cpu_seconds_per_core']:.1f} s per core "
          f"(the wall time on {figures['jobs']} free cores)")
    print(f"  training loop, one process, one thread: median {statistics.median(rates):.0f} steps per CPU second "
          f"over {args.loop_reps} x {args.loop_steps} steps (min {min(rates):.0f}, max {max(rates):.0f})")
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
