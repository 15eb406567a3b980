"""Cost of AIS evidence estimation against its floor (issue 15, the estimator part).

AIS with T intermediate distributions and L leapfrog steps makes 1 + (T - 1) L generator
forward + backward passes (w.r.t. z) over a batch of points x chains (ais.py). The floor is
that many bare passes, ``autograd.grad(G(z), z, grad_outputs)`` at the same batch and in eval
mode, timed in the same run, interleaved with the AIS runs so background load hits both alike.
Their ratio is the overhead of everything else (likelihood in float64, leapfrog updates,
Metropolis tests, step-size adaptation, random numbers); the goal is <= 1.3x.

1. A small MLP generator (latent 8, two hidden layers of 256, 64 outputs) and a DCGAN-32
   generator (src/occamgan/models/dcgan.py: latent 100, ngf 64, one channel, 1.07M weights);
   the median of several repeats of each.
2. MNIST-sized evaluation: 100 points x 16 chains on the DCGAN-32 generator (one batch of 1600
   latents) with a short schedule, timed once, then extrapolated linearly in passes and points
   to the reference setting 1,000 points x 16 chains x T = 1000 x L = 10.

Peak memory: resident set size of the process (CPU) or ``torch.cuda.max_memory_allocated``.
One thread by default (the machine is shared); ``--threads 2`` uses both cores.

    python benchmarks/bench_ais.py            # ~3-4 min on a busy 2-core machine
    python benchmarks/bench_ais.py --device cuda
"""
from __future__ import annotations

import argparse
import platform
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from occamgan.bayes.ais import ais  # noqa: E402
from occamgan.bayes.likelihood import evaluation_mode  # noqa: E402
from occamgan.models.dcgan import DCGANGenerator  # noqa: E402
from occamgan.models.init import dcgan_init_  # noqa: E402


def small_mlp() -> tuple[nn.Module, int]:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 256), nn.LeakyReLU(0.2), nn.Linear(256, 256), nn.LeakyReLU(0.2),
                        nn.Linear(256, 64))
    return net, 8


def dcgan32() -> tuple[nn.Module, int]:
    torch.manual_seed(0)
    return dcgan_init_(DCGANGenerator(latent_dim=100, channels=1, size=32, ngf=64)), 100


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device) -> float:
    synchronise(device)
    start = time.perf_counter()
    fn()
    synchronise(device)
    return time.perf_counter() - start


def floor_passes(gen: nn.Module, batch: int, latent_dim: int, passes: int, device: torch.device) -> None:
    """``passes`` bare forward + backward passes w.r.t. z at ``batch`` latents (eval mode)."""
    z = torch.randn(batch, latent_dim, device=device).requires_grad_(True)
    with evaluation_mode(gen):
        out_grad = torch.ones_like(gen(z.detach()))
        for _ in range(passes):
            out = gen(z)
            torch.autograd.grad(out, z, grad_outputs=out_grad)


def data_for(gen: nn.Module, n: int, latent_dim: int, sigma: float, device: torch.device) -> torch.Tensor:
    g = torch.Generator(device=device).manual_seed(1)
    with torch.no_grad(), evaluation_mode(gen):
        x = gen(torch.randn(n, latent_dim, generator=g, device=device))
        return x + sigma * torch.randn(x.shape, generator=g, device=device)


def run_ais(gen, x, latent_dim, chains, steps, leapfrog, sigma, device, batch_size=None):
    return ais(gen, x, latent_dim=latent_dim, sigma=sigma, chains=chains, steps=steps, leapfrog=leapfrog,
               rng=torch.Generator(device=device).manual_seed(0), batch_size=batch_size)


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def compare(name, build, points, chains, steps, leapfrog, repeats, sigma, device) -> dict:
    gen, latent_dim = build()
    gen = gen.to(device)
    x = data_for(gen, points, latent_dim, sigma, device)
    passes = 1 + (steps - 1) * leapfrog
    batch = points * chains
    run_ais(gen, x, latent_dim, chains, 3, 1, sigma, device)  # warm-up
    floor_passes(gen, batch, latent_dim, 2, device)
    t_ais, t_floor = [], []
    for _ in range(repeats):
        t_floor.append(timed(lambda: floor_passes(gen, batch, latent_dim, passes, device), device))
        t_ais.append(timed(lambda: run_ais(gen, x, latent_dim, chains, steps, leapfrog, sigma, device), device))
    a, f = statistics.median(t_ais), statistics.median(t_floor)
    return dict(name=name, points=points, chains=chains, steps=steps, leapfrog=leapfrog, passes=passes,
                batch=batch, ais=a, floor=f, ratio=a / f, per_point=a / points, repeats=repeats,
                peak_mb=peak_memory_mb(device))


def mnist_sized(steps: int, leapfrog: int, sigma: float, device: torch.device) -> dict:
    gen, latent_dim = dcgan32()
    gen = gen.to(device)
    points, chains = 100, 16
    x = data_for(gen, points, latent_dim, sigma, device)
    passes = 1 + (steps - 1) * leapfrog
    t = timed(lambda: run_ais(gen, x, latent_dim, chains, steps, leapfrog, sigma, device), device)
    ref_passes = 1 + 999 * 10
    per_pass = t / passes
    return dict(points=points, chains=chains, steps=steps, leapfrog=leapfrog, passes=passes, seconds=t,
                per_pass=per_pass, extrapolated_1000=per_pass * ref_passes * 10, ref_passes=ref_passes,
                peak_mb=peak_memory_mb(device))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sigma", type=float, default=0.1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    started = time.perf_counter()
    rows = [
        compare("MLP 8-256-256-64", small_mlp, points=16, chains=16, steps=100, leapfrog=10,
                repeats=max(args.repeats, 5), sigma=args.sigma, device=device),
        compare("DCGAN-32 (1.07M)", dcgan32, points=4, chains=16, steps=11, leapfrog=3,
                repeats=args.repeats, sigma=args.sigma, device=device),
    ]
    mnist = mnist_sized(steps=3, leapfrog=2, sigma=args.sigma, device=device)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, device {device}, "
          f"{args.threads} thread(s), sigma {args.sigma}, total {time.perf_counter() - started:.0f} s\n")
    print("| generator | points x chains | T | L | passes | AIS (s, median) | floor (s, median) | ratio | "
          "AIS per point (s) | repeats |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['name']} | {r['points']} x {r['chains']} | {r['steps']} | {r['leapfrog']} | {r['passes']} | "
              f"{r['ais']:.3f} | {r['floor']:.3f} | {r['ratio']:.2f}x | {r['per_point']:.4f} | {r['repeats']} |")
    m = mnist
    print(f"\nMNIST-sized, DCGAN-32: {m['points']} points x {m['chains']} chains (one batch of "
          f"{m['points'] * m['chains']}), T = {m['steps']}, L = {m['leapfrog']}: {m['passes']} passes in "
          f"{m['seconds']:.1f} s, {m['per_pass']:.2f} s per pass.")
    print(f"Extrapolated to 1,000 points x 16 chains x T = 1000 x L = 10 ({m['ref_passes']} passes per batch "
          f"of 100 points, 10 batches): {m['extrapolated_1000']:.0f} s = {m['extrapolated_1000'] / 3600:.1f} h "
          f"on this device (linear in passes and points).")
    print(f"Peak memory of the process: {max(r['peak_mb'] for r in rows + [m]):.0f} MB "
          f"({'CUDA allocated' if device.type == 'cuda' else 'resident set size'}).")


if __name__ == "__main__":
    main()
