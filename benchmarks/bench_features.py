"""Speed and memory of image-metric feature extraction, and the cost of the metrics themselves.

Each feature-extraction case runs in a fresh subprocess, so its peak resident memory
(``ru_maxrss``) is its own; the memory reported is the peak and its increase over the resident
size after loading the network (activations + preprocessing). Throughput is the median over
timed batches after one warm-up batch, including the preprocessing (8-bit quantisation, resize
to 299 x 299 for Inception). Cases:

- Inception (TF-FID TorchScript): MNIST-like 1 x 32 x 32 and CIFAR-like 3 x 64 x 64 inputs;
- LeNet domain classifier (1 x 28 x 28 input) on 1 x 32 x 32 images; a randomly initialised one
  of the same shape is timed if no trained ``lenet`` is in the cache (same cost).

Then, on random features of the Inception size (d = 2048) and of the LeNet size (d = 128), with
n generated = n real, the time of FID (statistics + sqrtm), KID (100 subsets of 1000) and
precision/recall/density/coverage.

    python benchmarks/bench_features.py                 # ~10 min on 2 busy cores
    python benchmarks/bench_features.py --quick         # fewer batches, n = 2000 for the metrics
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from occamgan.metrics.domain_classifier import ClassifierSpec, DomainClassifier, fit_to_input  # noqa: E402
from occamgan.metrics.features import (  # noqa: E402
    FeatureExtractor,
    FeatureNetworkError,
    load_feature_extractor,
    quantize,
)
from occamgan.metrics.fid import FeatureStatistics, fid_from_stats  # noqa: E402
from occamgan.metrics.kid import kernel_inception_distance  # noqa: E402
from occamgan.metrics.prdc import prdc  # noqa: E402


def rss_mb() -> float:
    """Current resident set size (Linux /proc), in MB."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def lenet_extractor() -> tuple[FeatureExtractor, str]:
    try:
        return load_feature_extractor("lenet"), "trained"
    except FeatureNetworkError:
        class Features(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.model = DomainClassifier(ClassifierSpec()).eval()

            def forward(self, x):
                return self.model.features(x)

        def prep(images):
            return fit_to_input(quantize(images) / 127.5 - 1.0, 1, 28)

        return FeatureExtractor("lenet", Features(), prep, 128), "random init (no trained lenet in cache)"


def child(network: str, shape: list[int], batch: int, batches: int, threads: int) -> dict:
    """One extraction case, run inside a fresh process."""
    torch.set_num_threads(threads)
    if network == "inception":
        extractor, note = load_feature_extractor("inception"), "TF-FID TorchScript"
    else:
        extractor, note = lenet_extractor()
    base = rss_mb()
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(batch, *shape, generator=gen) * 2 - 1
    extractor(images)  # warm-up
    times, cpu = [], []
    for _ in range(batches):
        start, start_cpu = time.perf_counter(), time.process_time()
        extractor(images)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    med = statistics.median(times)
    return {"network": network, "note": note, "input": "x".join(map(str, shape)), "batch": batch,
            "threads": threads, "images_per_s": batch / med, "s_per_image": med / batch,
            "cpu_s_per_image": statistics.median(cpu) / batch,
            "rss_after_load_mb": base, "peak_mb": peak_mb(), "peak_increase_mb": peak_mb() - base,
            "timed_batches": batches}


def run_child(args: argparse.Namespace, network: str, shape: list[int], batch: int, batches: int) -> dict:
    cmd = [sys.executable, __file__, "--child", json.dumps([network, shape, batch, batches, args.threads])]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def metric_costs(n: int, dim: int, threads: int) -> dict:
    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(0)
    real = torch.randn(n, dim, generator=gen).relu()
    fake = torch.randn(n, dim, generator=gen).relu() * 1.1
    out: dict = {"n": n, "dim": dim}

    def timed(key, fn):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = fn()
        out[key] = {"wall_s": time.perf_counter() - start, "cpu_s": time.process_time() - start_cpu}
        return result

    stats = timed("statistics", lambda: [FeatureStatistics().update(x).gaussian() for x in (real, fake)])
    timed("fid_sqrtm", lambda: fid_from_stats(*stats))
    timed("kid_100x1000", lambda: kernel_inception_distance(fake, real))
    timed("prdc", lambda: prdc(real, fake))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*json.loads(args.child))))
        return
    reps = 2 if args.quick else 5
    cases = [("inception", [1, 32, 32], 16, reps), ("inception", [3, 64, 64], 16, reps),
             ("inception", [3, 64, 64], 50, max(1, reps // 2)), ("lenet", [1, 32, 32], 500, reps * 4)]
    results = {"machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}",
               "threads": args.threads, "extraction": []}
    for network, shape, batch, batches in cases:
        try:
            r = run_child(args, network, shape, batch, batches)
        except subprocess.CalledProcessError as exc:
            print(f"{network} {shape}: skipped ({exc.stderr.strip().splitlines()[-1]})")
            continue
        results["extraction"].append(r)
        print(f"{network:9s} {r['input']:>8s} batch {batch:3d}: {r['images_per_s']:8.2f} images/s "
              f"({r['s_per_image'] * 1e3:7.2f} ms/image wall, {r['cpu_s_per_image'] * 1e3:7.2f} ms CPU), peak RSS {r['peak_mb']:6.0f} MB "
              f"(+{r['peak_increase_mb']:.0f} MB over the loaded network) [{r['note']}]", flush=True)
    n = 2000 if args.quick else 10_000
    results["metrics"] = []
    for dim in (2048, 128):  # Inception, LeNet
        m = metric_costs(n, dim, args.threads)
        results["metrics"].append(m)
        print(f"metrics on n = {n} generated and {n} real {dim}-d features (wall / CPU seconds):")
        for key in ("statistics", "fid_sqrtm", "kid_100x1000", "prdc"):
            print(f"  {key:14s} {m[key]['wall_s']:8.2f} / {m[key]['cpu_s']:8.2f}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
