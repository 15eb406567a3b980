"""GPU throughput of occamgan in one Markdown table (< 8 minutes on one GPU).

Rows:
- DCGAN-64 WGAN-div training iteration (n_critic 5 critic steps + 1 generator step, global batch
  64, ngf = ndf = 64, latent 100, Adam) in float32, in bfloat16 autocast (``train.amp``), compiled
  (``train.compile``: G and D compiled where they are differentiated once; the critic at WGAN-div's
  penalty points runs eager, see compilation.py) and both;
- sampling from the generator in eval mode (images/s, batch 500);
- Inception (FID network) features of 64 x 64 images (images/s, batch 200), when its weights are
  present (``$OCCAMGAN_INCEPTION`` or the cache; never downloaded here);
- peak GPU memory of the training iteration (``torch.cuda.max_memory_allocated``);
- the time of one MNIST-sized epoch at 64 px (60,000 images = 938 iterations, synthetic images of
  MNIST's shape unless MNIST is in the cache);
- data-parallel throughput of the training iteration over the GPUs present (torch.distributed.run
  with one process per GPU, NCCL; the same global batch 64 and, for weak scaling, 64 per GPU).

    python benchmarks/bench_gpu.py                       # on a CUDA machine
    python benchmarks/bench_gpu.py --device cpu --quick --compile-backend aot_eager  # smoke check anywhere
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
from typing import Callable

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from occamgan import distributed  # noqa: E402
from occamgan.build import build_game, resolve_device  # noqa: E402
from occamgan.config import build_config  # noqa: E402
from occamgan.data.base import BatchSampler  # noqa: E402
from occamgan.plugins import UPDATE_RULES  # noqa: E402


def config(args: argparse.Namespace, batch: int, amp: bool = False, compile_players: bool = False):
    return build_config({
        "seed": 0,
        "model": {"name": "dcgan", "latent_dim": 100, "ngf": args.width, "ndf": args.width},
        "objective": {"name": "wgan_div"},
        "train": {"batch_size": batch, "n_critic": args.n_critic, "lr_g": 1e-4, "lr_d": 1e-4,
                  "device": args.device, "amp": amp, "compile": compile_players,
                  "compile_backend": args.compile_backend},
    })


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], None], device: torch.device, warmup: int, reps: int) -> float:
    """Median seconds of ``fn`` after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


class Trainer:
    """Game + alternating rule on a fixed pool of images, as the Trainer drives them."""

    def __init__(self, args: argparse.Namespace, device: torch.device, batch: int, amp: bool = False,
                 compile_players: bool = False, data: torch.Tensor | None = None):
        cfg = config(args, batch, amp, compile_players)
        torch.manual_seed(0)
        self.game = build_game(cfg, (args.channels, args.size, args.size), device)
        if distributed.is_distributed():
            for net in (self.game.generator, self.game.discriminator):
                distributed.convert_sync_batchnorm(net)
        if compile_players:
            self.game.compile_players(cfg.train.compile_backend, cfg.train.compile_mode)
        self.rule = UPDATE_RULES.get("alternating")(self.game, cfg.train)
        if data is None:
            gen = torch.Generator().manual_seed(0)
            data = torch.rand(max(8, 2 * args.n_critic) * batch, args.channels, args.size, args.size, generator=gen) * 2 - 1
        self.sampler = BatchSampler(data, batch * distributed.world_size(), seed=1, device=device,
                                    rank=distributed.rank(), world=distributed.world_size())

    def iteration(self) -> None:
        stats = self.rule.step(self.game, self.sampler.next)
        distributed.agree_on_step(stats, None)


def sampling_rate(trainer: Trainer, device: torch.device, batch: int, reps: int) -> float:
    g = trainer.game.generator.eval()
    z = torch.randn(batch, trainer.game.latent_dim, device=device)

    def sample() -> None:
        with torch.no_grad():
            g(z)

    seconds = timed(sample, device, 2, reps)
    g.train()
    return batch / seconds


def inception_rate(args: argparse.Namespace, device: torch.device, reps: int) -> str:
    from occamgan.metrics.features import find_inception, inception_extractor

    try:
        find_inception(allow_download=False)
        extractor = inception_extractor(device=device)
    except Exception as exc:  # weights absent: say so, the rest of the table stands
        return f"n/a ({type(exc).__name__}: weights not found)"
    batch = 200 if not args.quick else 8
    x = torch.rand(batch, 3, 64, 64, device=device) * 2 - 1
    seconds = timed(lambda: extractor(x), device, 1, reps)
    return f"{batch / seconds:,.0f}"


def mnist_images(args: argparse.Namespace) -> tuple[torch.Tensor | None, str]:
    try:
        from occamgan.config import build_config as bc
        from occamgan.data.base import build_data

        cfg = bc({"data": {"name": "mnist", "image_size": args.size, "download": False}})
        data = build_data(cfg).data
        return data, "MNIST"
    except Exception:
        return None, "synthetic images of MNIST's shape"


def dp_worker(args: argparse.Namespace) -> None:
    """One rank of the data-parallel measurement (started by torch.distributed.run)."""
    device = distributed.local_device(torch.device(args.device))
    distributed.init(device)
    out = {}
    for label, per_rank in (("strong", args.batch // distributed.world_size()), ("weak", args.batch)):
        trainer = Trainer(args, device, per_rank)
        seconds = timed(trainer.iteration, device, 2, args.reps)
        out[label] = {"seconds": seconds, "images_per_s": per_rank * distributed.world_size() / seconds}
    if distributed.is_main():
        print("RESULT " + json.dumps(out), flush=True)


def data_parallel(args: argparse.Namespace, gpus: int) -> dict | None:
    if gpus < 2:
        return None
    own = [str(Path(__file__).resolve()), "--dp-worker", "--device", args.device, "--batch", str(args.batch),
           "--width", str(args.width), "--size", str(args.size), "--n-critic", str(args.n_critic),
           "--reps", str(args.reps)] + (["--quick"] if args.quick else [])
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(gpus), *own]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not lines:
        print(f"data-parallel measurement failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(lines[-1][len("RESULT "):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="DCGAN-32, ngf = ndf = 16, batch 16, few repetitions")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--n-critic", type=int, default=5)
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    parser.add_argument("--compile-backend", default="inductor", help="train.compile_backend of the compiled rows")
    parser.add_argument("--dp-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.channels = 1
    if args.quick:
        args.size, args.width, args.batch, args.n_critic, args.reps = 32, 16, 16, 1, 3
    if args.dp_worker:
        dp_worker(args)
        return
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False  # fp32 means fp32
    rows: list[tuple[str, str]] = []
    label = f"DCGAN-{args.size} WGAN-div iteration (n_critic {args.n_critic}, batch {args.batch})"

    fp32 = Trainer(args, device, args.batch)
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    t32 = timed(fp32.iteration, device, 3, args.reps)
    peak = f"{torch.cuda.max_memory_allocated(device) / 2**20:,.0f} MiB" if cuda else "n/a (CPU)"
    rows.append((f"{label}, float32", f"{t32 * 1e3:.1f} ms"))
    bf16 = Trainer(args, device, args.batch, amp=True)
    tbf = timed(bf16.iteration, device, 3, args.reps)
    rows.append((f"{label}, bfloat16 autocast", f"{tbf * 1e3:.1f} ms ({t32 / tbf:.2f}x)"))
    if not args.no_compile:
        for amp, name in ((False, "compiled"), (True, "bfloat16 + compiled")):
            try:
                compiled = Trainer(args, device, args.batch, amp=amp, compile_players=True)
                start = time.perf_counter()
                compiled.iteration()
                synchronize(device)
                warm = time.perf_counter() - start
                tc = timed(compiled.iteration, device, 2, args.reps)
                rows.append((f"{label}, {name} ({args.compile_backend})",
                             f"{tc * 1e3:.1f} ms ({t32 / tc:.2f}x; first iteration {warm:.0f} s)"))
            except Exception as exc:
                rows.append((f"{label}, {name}", f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"))
    rows.append(("peak memory of the float32 iteration", peak))
    rows.append((f"sampling, eval mode (images/s, batch {500 if not args.quick else 64})",
                 f"{sampling_rate(fp32, device, 500 if not args.quick else 64, args.reps):,.0f}"))
    rows.append(("Inception features, 64 px (images/s)", inception_rate(args, device, args.reps)))

    images, what = mnist_images(args)
    epoch = Trainer(args, device, args.batch, data=images)
    n_iter = 60_000 // args.batch if not args.quick else 20
    start = time.perf_counter()
    for _ in range(n_iter):
        epoch.iteration()
    synchronize(device)
    seconds = time.perf_counter() - start
    if args.quick:
        seconds *= (60_000 // args.batch) / n_iter
    rows.append((f"MNIST epoch at {args.size} px ({60_000 // args.batch} iterations, {what})",
                 f"{seconds:.1f} s" + (" (extrapolated from 20 iterations)" if args.quick else "")))

    gpus = torch.cuda.device_count() if cuda else 0
    dp = data_parallel(args, gpus)
    if dp is None:
        rows.append(("data parallel over the GPUs present", f"n/a ({gpus} GPU{'s' if gpus != 1 else ''})"))
    else:
        base = args.batch / t32
        for kind, result in dp.items():
            rows.append((f"data parallel, {gpus} GPUs, {kind} scaling (images/s of critic batches)",
                         f"{result['images_per_s']:,.0f} ({result['images_per_s'] / base:.2f}x one GPU)"))

    name = torch.cuda.get_device_name(device) if cuda else "CPU"
    print(f"occamgan on {name}, torch {torch.__version__}\n")
    print("| measurement | result |")
    print("| --- | ---: |")
    for key, value in rows:
        print(f"| {key} | {value} |")


if __name__ == "__main__":
    main()
