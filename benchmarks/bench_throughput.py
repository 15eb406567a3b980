"""Training throughput of the default configuration (issue: core, item 12).

Times the training loop alone (build once per repetition, then ``Trainer.fit`` for a fixed
number of steps, checkpoint at the end only) and reports the median steps/s over repetitions,
plus the wall time of the whole default job (``occamgan.train()``: training, final metrics,
plot) once.

    python benchmarks/bench_throughput.py [--steps 1000] [--reps 5] [--threads 2] [--full]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

import occamgan
from occamgan.build import build_experiment
from occamgan.config import load_config
from occamgan.train.trainer import Trainer


def loop_rate(steps: int, seed: int) -> tuple[float, float]:
    """(steps per wall second, steps per CPU second of this process)."""
    cfg = load_config(None, [f"train.steps={steps}", f"train.checkpoint_every={steps}", f"seed={seed}"])
    exp = build_experiment(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(exp, Path(tmp), progress=False)
        start, cpu = time.perf_counter(), time.process_time()
        trainer.fit()
        return steps / (time.perf_counter() - start), steps / (time.process_time() - cpu)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--full", action="store_true", help="also time the whole default job once")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    measured = [loop_rate(args.steps, seed) for seed in range(args.reps)]
    rates, cpu_rates = [m[0] for m in measured], [m[1] for m in measured]
    cfg = load_config()
    print(f"default config: {cfg.data.name}, {cfg.objective.name}, batch {cfg.train.batch_size}, "
          f"MLP depth {cfg.model.depth} width {cfg.model.width}, {args.threads} threads")
    print(f"training loop: median {statistics.median(rates):.1f} steps/s over {args.reps} runs of "
          f"{args.steps} steps (min {min(rates):.1f}, max {max(rates):.1f}); "
          f"median {statistics.median(cpu_rates):.1f} steps per CPU-second")
    if args.full:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            result = occamgan.train(out=Path(tmp) / "run", progress=False)
            wall = time.perf_counter() - start
        print(f"whole default job ({cfg.train.steps} steps + final metrics + plot): {wall:.1f} s; "
              f"scores {result.metrics}")


if __name__ == "__main__":
    main()
