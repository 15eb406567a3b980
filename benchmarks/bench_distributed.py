"""CPU scaling of data-parallel training: one training step of DCGAN-32 on 1 process vs 2 gloo
ranks at the same global batch, and the share of the step spent in collectives.

A step is what the Trainer runs: ``rule.step`` (alternating, n_critic critic steps + 1 generator
step, gradients averaged in flat all-reduce buckets, SyncBatchNorm over the global batch) plus
the per-step agreement on losses and signals. "collectives" is the wall time inside
``all_reduce``/``all_gather`` calls, waiting for the slower rank included. Each configuration runs
in fresh processes (2 ranks under torch.distributed.run); medians over the timed steps.

Data: scikit-learn's digits resized to 32 x 32 (1 channel, no download); DCGAN-32 with
ngf = ndf = 64, latent 100, global batch 64, the default objective (non-saturating).

    python benchmarks/bench_distributed.py            # ~2 min on 2 CPU cores
    python benchmarks/bench_distributed.py --quick    # ngf = ndf = 16, seconds
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def worker(args: argparse.Namespace) -> None:
    import torch
    import torch.distributed as dist

    sys.path.insert(0, str(ROOT / "src"))
    from occamgan import distributed
    from occamgan.api import resolve_config
    from occamgan.build import build_experiment, resolve_device
    from occamgan.train.checkpoint import set_rng_state

    torch.set_num_threads(args.threads)
    cfg = resolve_config(None, [
        "data.name=digits", "data.image_size=32", "model.name=dcgan", f"model.ngf={args.width}",
        f"model.ndf={args.width}", "model.latent_dim=100", f"train.batch_size={args.batch}",
        f"train.n_critic={args.n_critic}", f"objective.name={args.objective}", "train.device=cpu"])
    distributed.init(resolve_device(cfg.train.device))
    exp = build_experiment(cfg)
    sampler = exp.data.batch_sampler(cfg.train.batch_size, 1, exp.device, rank=distributed.rank(),
                                     world=distributed.world_size())
    set_rng_state(exp.init_rng)

    spent = [0.0]
    for name in ("all_reduce", "all_gather"):
        original = getattr(dist, name)

        def timed(*a, _original=original, **k):
            t = time.perf_counter()
            try:
                return _original(*a, **k)
            finally:
                spent[0] += time.perf_counter() - t

        setattr(dist, name, timed)

    steps, comm = [], []
    for i in range(args.warmup + args.steps):
        distributed.barrier()
        spent[0] = 0.0
        t = time.perf_counter()
        stats = exp.rule.step(exp.game, sampler.next)
        distributed.agree_on_step(stats, None)
        if i >= args.warmup:
            steps.append(time.perf_counter() - t)
            comm.append(spent[0])
    if distributed.is_main():
        print("RESULT " + json.dumps({"world": distributed.world_size(), "threads": args.threads,
                                      "step_s": statistics.median(steps), "comm_s": statistics.median(comm)}))


def measure(world: int, threads: int, args: argparse.Namespace) -> dict:
    own = [str(Path(__file__).resolve()), "--worker", "--threads", str(threads), "--batch", str(args.batch),
           "--width", str(args.width), "--steps", str(args.steps), "--warmup", str(args.warmup),
           "--n-critic", str(args.n_critic), "--objective", args.objective]
    cmd = ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(world), *own]
           if world > 1 else [sys.executable, *own])
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise SystemExit(f"benchmark worker failed ({' '.join(cmd)}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="ngf = ndf = 16 and fewer steps")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--n-critic", type=int, default=1)
    parser.add_argument("--objective", default="ns")
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    if args.quick:
        args.width, args.steps, args.warmup = 16, 3, 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    rows = [("1 process, 1 thread", measure(1, 1, args)),
            (f"1 process, {min(2, cores)} threads", measure(1, min(2, cores), args)),
            ("2 gloo ranks, 1 thread each", measure(2, 1, args))]
    base = rows[1][1]["step_s"]
    print(f"DCGAN-32 (ngf = ndf = {args.width}), {args.objective}, n_critic {args.n_critic}, global batch "
          f"{args.batch}, {cores} CPU cores, torch {__import__('torch').__version__}\n")
    print("| configuration | step (s) | speed-up vs 1 process x 2 threads | in collectives |")
    print("| --- | ---: | ---: | ---: |")
    for label, r in rows:
        share = f"{r['comm_s'] / r['step_s']:.0%} ({r['comm_s'] * 1e3:.0f} ms)" if r["world"] > 1 else "-"
        print(f"| {label} | {r['step_s']:.3f} | {base / r['step_s']:.2f}x | {share} |")


if __name__ == "__main__":
    main()
