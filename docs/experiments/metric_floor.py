"""What the image metrics say about real MNIST: the floor (test vs train images) and how each
metric reacts to dropped modes and to degraded samples. Writes a JSON table to stdout/--out.

    OMP_NUM_THREADS=1 nice -n 10 python docs/experiments/metric_floor.py --root ../shared/data \
        --out runs/metric_floor.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

from occamgan.config import build_config  # noqa: E402
from occamgan.data.base import build_data  # noqa: E402
from occamgan.evaluation import evaluate_metrics  # noqa: E402
from occamgan.metrics.base import metric_values  # noqa: E402


def variants(test, n: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Generated-image stand-ins built from the MNIST test split (never seen by the reference)."""
    idx = torch.randperm(len(test), generator=gen)
    first = idx[:n]
    low_digits = idx[test.labels[idx] < 5][:n]  # half of the modes dropped
    x = test.data[first]
    return {
        "test images": x,
        "digits 0-4 only": test.data[low_digits],
        "noise sd 0.3": (x + 0.3 * torch.randn(x.shape, generator=gen)).clamp(-1, 1),
        "blurred (3x3 box)": torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--lenet-n", type=int, nargs="+", default=[2000, 10000])
    parser.add_argument("--inception-n", type=int, nargs="*", default=[500])
    parser.add_argument("--out", type=Path, help="also write the rows as JSON (keep it under runs/)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = {s: build_data(build_config({"data": {"name": "mnist", "split": s, "root": args.root}})) for s in ("train", "test")}
    rows = []
    plans = [("lenet", n) for n in args.lenet_n] + [("inception", n) for n in args.inception_n]
    for network, n in plans:
        names = ["fid", "kid", "pr", "dc"] if network == "inception" else [f"{k}_{network}" for k in ("fid", "kid", "pr", "dc")]
        for label, images in variants(data["test"], n, torch.Generator().manual_seed(0)).items():
            start = time.perf_counter()
            out = evaluate_metrics(names, images, data=data["train"], n=n, n_ref=n)
            proto = out[f"protocol_{network}"]
            row = {"network": network, "n": n, "variant": label, **metric_values(out),
                   "n_fake": proto["n_fake"], "n_real": proto["n_real"], "seconds": round(time.perf_counter() - start, 1)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
