"""Speed of a WGAN-div DCGAN-64 training iteration: occamgan vs a plain loop like the authors'.

One iteration = n_critic (5) critic steps + 1 generator step on batches of 64 images
(3 x 64 x 64, ngf = ndf = 64, latent 100), Adam(0.5, 0.999). Both contestants start from the same
weights, see the same batches and latents, and compute the same losses (WGAN-div, k = 2, p = 6,
gradients at the real and the fake points; real and fake batches pass D separately, so BatchNorm
sees the same batches); the script checks that their parameters agree after one iteration.

- occamgan: ``Game`` + the ``alternating`` update rule (critic steps on detached fakes, no
  generator graph for the first n_critic - 1 critic steps, the last critic step's fakes reused
  by the generator step; the penalty reads grad_x D from the loss's own critic forwards, one per
  batch, through the Game's ``CriticPass``).
- reference: the plain loop of the paper's code: fakes are not detached in the critic step
  (backward runs through G for nothing), and the generator step recomputes G(z).

It also reports the iteration's FLOP rate (FLOPs counted by torch's FlopCounterMode) as a
fraction of a large float32 matrix product's rate measured in the same run, the same for a plain
non-saturating DCGAN-64 step, images/s of sampling from the generator in eval mode, and the peak
resident memory of each contestant (each in a fresh subprocess). Medians over interleaved
repetitions, so background load hits both contestants alike.

    python benchmarks/bench_dcgan_step.py            # full DCGAN-64, ~5 min on 2 quiet CPU cores
    python benchmarks/bench_dcgan_step.py --quick    # DCGAN-32 with ngf = ndf = 16, seconds
"""
from __future__ import annotations

import argparse
import copy
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from occamgan.build import build_game  # noqa: E402
from occamgan.config import build_config  # noqa: E402
from occamgan.data.base import BatchSampler, DataSource  # noqa: E402
from occamgan.plugins import UPDATE_RULES  # noqa: E402


# ----------------------------------------------------------------------------------- set-up
def make_config(args: argparse.Namespace, objective: str = "wgan_div", n_critic: int | None = None):
    return build_config({
        "seed": 0,
        "model": {"name": "dcgan", "latent_dim": 100, "ngf": args.width, "ndf": args.width},
        "objective": {"name": objective},
        "train": {"batch_size": args.batch, "n_critic": n_critic or args.n_critic, "lr_g": 1e-4,
                  "lr_d": 1e-4, "betas": [0.5, 0.999], "device": "cpu"},
    })


def fake_data(args: argparse.Namespace) -> DataSource:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(8 * args.batch, 3, args.size, args.size, generator=gen) * 2 - 1
    return DataSource("bench", x, kind="image")


class Occamgan:
    """occamgan's Game + alternating rule."""

    def __init__(self, cfg, data: DataSource, device: torch.device):
        torch.manual_seed(cfg.seed)
        self.game = build_game(cfg, data, device)
        self.rule = UPDATE_RULES.get("alternating")(self.game, cfg.train)
        self.sampler = BatchSampler(data.data, cfg.train.batch_size, seed=1, device=device)

    def iteration(self) -> None:
        self.rule.step(self.game, self.sampler.next)


class AuthorsLoop:
    """A plain loop in the style of the paper's code (WGAN-div): fakes not detached in the critic
    step, the generator forward recomputed for the generator step. Same losses as occamgan."""

    def __init__(self, generator: nn.Module, critic: nn.Module, cfg, data: DataSource, device: torch.device):
        self.g, self.d = generator, critic
        t, o = cfg.train, cfg.objective
        self.opt_g = torch.optim.Adam(self.g.parameters(), lr=t.lr_g, betas=tuple(t.betas), eps=t.adam_eps)
        self.opt_d = torch.optim.Adam(self.d.parameters(), lr=t.lr_d, betas=tuple(t.betas), eps=t.adam_eps)
        self.k, self.p, self.n_critic = o.div_k, o.div_p, t.n_critic
        self.latent_dim, self.device = cfg.model.latent_dim, device
        self.sampler = BatchSampler(data.data, t.batch_size, seed=1, device=device)

    def iteration(self) -> None:
        for _ in range(self.n_critic):
            real = self.sampler.next().requires_grad_(True)
            z = torch.randn(real.shape[0], self.latent_dim).to(self.device)
            fake = self.g(z)  # not detached: the backward below also runs through G
            d_real, d_fake = self.d(real).reshape(-1), self.d(fake).reshape(-1)
            (g_real,) = torch.autograd.grad(d_real.sum(), real, create_graph=True)
            (g_fake,) = torch.autograd.grad(d_fake.sum(), fake, create_graph=True)
            power = lambda g: g.flatten(1).pow(2).sum(1).pow(self.p / 2)  # noqa: E731
            loss_d = d_fake.mean() - d_real.mean() + 0.5 * self.k * (power(g_real) + power(g_fake)).mean()
            self.opt_d.zero_grad()
            loss_d.backward()
            self.opt_d.step()
        fake = self.g(z)  # recomputed (same z as the last critic step, as occamgan)
        loss_g = -self.d(fake).mean()
        self.opt_g.zero_grad()
        loss_g.backward()
        self.opt_g.step()


def contestants(args: argparse.Namespace, device: torch.device) -> tuple[Occamgan, AuthorsLoop]:
    cfg, data = make_config(args), fake_data(args)
    ours = Occamgan(cfg, data, device)
    ref = AuthorsLoop(copy.deepcopy(ours.game.generator), copy.deepcopy(ours.game.discriminator), cfg, data, device)
    return ours, ref


def check_equal_math(args: argparse.Namespace, device: torch.device) -> float:
    """Largest parameter difference after one iteration from identical states and latents."""
    ours, ref = contestants(args, device)
    for runner in (ours, ref):
        torch.manual_seed(123)
        runner.iteration()
    pairs = list(zip(ours.game.generator.parameters(), ref.g.parameters()))
    pairs += list(zip(ours.game.discriminator.parameters(), ref.d.parameters()))
    return max((a - b).abs().max().item() for a, b in pairs)


# ----------------------------------------------------------------------------------- timing
def timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def timed_both(fn: Callable[[], None]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process). On a shared machine the CPU time is the
    fairer measure of work: it does not grow when other processes take the cores."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


class _GlobalOnly:
    """Stands in for FlopCounterMode's module tracker, whose backward hooks break
    ``torch.autograd.grad`` (needed by the gradient penalties); we only need the global total."""

    parents = ("Global",)

    def __enter__(self):
        return self

    def __exit__(self, *args) -> None:
        return None


def count_flops(fn: Callable[[], None]) -> int:
    """FLOPs of the matmul/convolution ops (forward, backward, double backward) run by ``fn``."""
    counter = FlopCounterMode(display=False)
    counter.mod_tracker = _GlobalOnly()
    with counter:
        fn()
    return counter.get_total_flops()


def matmul_seconds(n: int) -> tuple[float, float]:
    """(wall, CPU) seconds of one n x n float32 matrix product (2 n^3 FLOPs)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    return timed_both(lambda: a @ b)


def ns_step(args: argparse.Namespace, device: torch.device) -> Occamgan:
    return Occamgan(make_config(args, objective="ns", n_critic=1), fake_data(args), device)


@torch.no_grad()
def sampling_rate(generator: nn.Module, latent_dim: int, batch: int, reps: int) -> float:
    generator.eval()
    z = torch.randn(batch, latent_dim)
    generator(z)
    return batch / statistics.median(timed(lambda: generator(z)) for _ in range(reps))


def peak_rss_mb(args: argparse.Namespace, which: str) -> dict[str, float]:
    """Peak resident memory of a fresh process running one iteration of ``which``, and its peak
    before that iteration (imports, models, data)."""
    cmd = [sys.executable, __file__, "--memory-of", which, "--size", str(args.size), "--width", str(args.width),
           "--batch", str(args.batch), "--n-critic", str(args.n_critic), "--threads", str(args.threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    before, after = map(float, out.strip().splitlines()[-1].split())
    return {"peak_rss_mb": after, "peak_before_training_mb": before}


def peak_rss_self_mb() -> float:
    """Peak resident memory of this process: VmHWM (reset by exec, unlike ru_maxrss, which on
    Linux keeps the high-water mark of the forking parent), else ru_maxrss."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def memory_child(args: argparse.Namespace) -> None:
    ours, ref = contestants(args, torch.device("cpu"))
    runner = {"occamgan": ours, "reference": ref}[args.memory_of]
    del ours, ref
    before = peak_rss_self_mb()
    runner.iteration()
    print(f"{before:.1f} {peak_rss_self_mb():.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--width", type=int, default=64, help="ngf = ndf")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--n-critic", type=int, default=5)
    ap.add_argument("--reps", type=int, default=5, help="timed iterations per contestant")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="DCGAN-32, ngf = ndf = 16 (a smoke run)")
    ap.add_argument("--no-check", action="store_true", help="skip the equal-math check (one iteration per contestant)")
    ap.add_argument("--memory-only", action="store_true", help="only (re)measure peak memory into --out")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "bench" / "dcgan_step.json")
    ap.add_argument("--memory-of", choices=["occamgan", "reference"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.quick:
        args.size, args.width = 32, 16
    torch.set_num_threads(args.threads)
    if args.memory_of:
        return memory_child(args)
    if args.memory_only:  # re-measure memory into an existing result file
        result = json.loads(args.out.read_text())
        result["peak_rss_mb"] = {name: peak_rss_mb(args, name) for name in ("occamgan", "reference")}
        args.out.write_text(json.dumps(result, indent=2))
        return print(json.dumps(result["peak_rss_mb"], indent=2))
    device = torch.device("cpu")

    diff = None if args.no_check else check_equal_math(args, device)
    ours, ref = contestants(args, device)
    runners = {"occamgan": ours, "reference": ref, "ns_step": ns_step(args, device)}
    n_mm = 2048 if args.quick else 4096
    matmul_seconds(n_mm)
    # the warm-up iteration also counts the FLOPs (they depend only on the shapes)
    flops = {name: count_flops(runner.iteration) for name, runner in runners.items()}
    wall: dict[str, list[float]] = {name: [] for name in [*runners, "matmul"]}
    cpu: dict[str, list[float]] = {name: [] for name in wall}
    for rep in range(args.reps):  # interleaved, so background load hits all alike
        for name in wall:
            w, c = matmul_seconds(n_mm) if name == "matmul" else timed_both(runners[name].iteration)
            wall[name].append(w)
            cpu[name].append(c)
        print(f"rep {rep + 1}/{args.reps}: " + ", ".join(f"{n} {v[-1]:.2f}s" for n, v in wall.items()), file=sys.stderr)
    secs = {name: statistics.median(t) for name, t in wall.items()}
    cpu_secs = {name: statistics.median(t) for name, t in cpu.items()}
    flops["matmul"] = 2 * n_mm**3
    rate = {name: flops[name] / secs[name] for name in secs}
    cpu_rate = {name: flops[name] / cpu_secs[name] for name in secs}
    result = {
        "setup": {"size": args.size, "ngf_ndf": args.width, "batch": args.batch, "n_critic": args.n_critic,
                  "threads": args.threads, "reps": args.reps, "torch": torch.__version__,
                  "cpu": platform.processor() or platform.machine(), "matmul_n": n_mm},
        "max_param_diff_after_one_iteration": diff,
        "seconds_per_iteration": secs,
        "cpu_seconds_per_iteration": cpu_secs,
        "speedup_vs_reference": secs["reference"] / secs["occamgan"],
        "cpu_speedup_vs_reference": cpu_secs["reference"] / cpu_secs["occamgan"],
        "gflop_per_iteration": {name: f / 1e9 for name, f in flops.items()},
        "gflops": {name: r / 1e9 for name, r in rate.items()},
        "flop_rate_fraction_of_matmul": {name: rate[name] / rate["matmul"] for name in runners},
        "cpu_flop_rate_fraction_of_matmul": {name: cpu_rate[name] / cpu_rate["matmul"] for name in runners},
        "sampling_images_per_second": sampling_rate(ours.game.generator, 100, 256, args.reps),
        "peak_rss_mb": {name: peak_rss_mb(args, name) for name in ("occamgan", "reference")},
        "raw_wall_seconds": wall,
        "raw_cpu_seconds": cpu,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if not k.startswith("raw_")}, indent=2))


if __name__ == "__main__":
    main()
