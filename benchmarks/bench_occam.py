"""Cost of the Occam mechanisms: SAM/ASAM steps and MC-dropout passes (issue 3, item 10).

1. SAM: one training step of the ``alternating`` rule (1 critic + 1 generator step, non-saturating
   loss, toy MLPs of width 128 and depth 2 on ring8, batch 256) with plain Adam, with SAM and with
   ASAM on both players. Counted per step: backward passes (gradient evaluations) and loss
   evaluations of each player; timed: the median step. SAM must cost no more than two gradient
   evaluations per player step, so the time ratio SAM/Adam should stay at or below ~2.
2. MC dropout: one generator-loss and one critic-loss evaluation with backward (as in a training
   step: the critic loss on detached fakes, the generator loss with its graph, both given the
   latents so that every pass draws fresh generator masks), dropout 0.1, n_mcd in {1, 4, 8},
   with the passes stacked into one forward (the default, for networks without BatchNorm) or run
   one after the other. Counted: generator forwards per evaluation; timed: medians. Two sizes:
   batch 256 / width 128 (arithmetic-bound) and the paper's toy scale, batch 50 / width 32
   (call-overhead-bound, where stacking pays most).

Contestants are interleaved step by step, so background load hits them alike; each figure is a
median over the timed repetitions (after untimed warm-up). One thread by default (the machine is
shared); pass ``--threads 2`` to use both cores.

    python benchmarks/bench_occam.py                 # ~3 min on a busy machine
    python benchmarks/bench_occam.py --reps 50       # quicker, noisier
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from occamgan.build import build_experiment  # noqa: E402
from occamgan.config import build_config  # noqa: E402

BASE = ["data.name=ring8", "data.n_samples=4096", "objective.name=ns", "model.width=128", "model.depth=2",
        "train.batch_size=256", "train.n_critic=1", "train.device=cpu"]


class Counts:
    """Counts backward passes and the Game's loss evaluations while installed."""

    def __init__(self) -> None:
        self.backward = self.loss_d = self.loss_g = self.g_forward = 0

    def install(self, game) -> Callable[[], None]:
        original_backward = torch.Tensor.backward
        counts = self

        def backward(tensor, *args, **kwargs):
            counts.backward += 1
            return original_backward(tensor, *args, **kwargs)

        loss_d, loss_g = game.discriminator_loss, game.generator_loss

        def counted_d(*a, **k):
            counts.loss_d += 1
            return loss_d(*a, **k)

        def counted_g(*a, **k):
            counts.loss_g += 1
            return loss_g(*a, **k)

        torch.Tensor.backward = backward
        game.discriminator_loss, game.generator_loss = counted_d, counted_g
        hook = game.generator.register_forward_hook(lambda *_: setattr(counts, "g_forward", counts.g_forward + 1))

        def uninstall() -> None:
            torch.Tensor.backward = original_backward
            del game.discriminator_loss, game.generator_loss
            hook.remove()

        return uninstall


def median_ms(samples: list[float]) -> float:
    return 1000 * statistics.median(samples)


# ---------------------------------------------------------------------- SAM
def bench_sam(reps: int, warmup: int) -> dict[str, Any]:
    variants = {
        "adam": [],
        "sam (rho 0.05)": ["train.sam_rho=0.05", "train.sam_adaptive=false"],
        "asam (rho 0.5)": ["train.sam_rho=0.5", "train.sam_adaptive=true"],
    }
    runs = {}
    for name, extra in variants.items():
        exp = build_experiment(build_config(overrides=BASE + extra))
        gen = torch.Generator().manual_seed(0)
        data = exp.data.data

        def next_batch(data=data, gen=gen, size=exp.cfg.train.batch_size):
            return data[torch.randint(len(data), (size,), generator=gen)]

        runs[name] = (exp, next_batch)
    times: dict[str, list[float]] = {name: [] for name in runs}
    counts: dict[str, Counts] = {}
    for i in range(warmup + reps):
        for name, (exp, next_batch) in runs.items():
            if i == warmup:  # count exactly one step per contestant
                counts[name] = Counts()
                uninstall = counts[name].install(exp.game)
            start = time.perf_counter()
            exp.rule.step(exp.game, next_batch)
            elapsed = time.perf_counter() - start
            if i == warmup:
                uninstall()
            if i >= warmup:
                times[name].append(elapsed)
    base = median_ms(times["adam"])
    return {
        name: {
            "median_ms": median_ms(times[name]),
            "ratio_to_adam": median_ms(times[name]) / base,
            "backward_per_step": counts[name].backward,
            "critic_loss_evals": counts[name].loss_d,
            "generator_loss_evals": counts[name].loss_g,
        }
        for name in runs
    }


# ---------------------------------------------------------------------- MC dropout
def bench_mc_dropout(reps: int, warmup: int, passes: tuple[int, ...], batch: int, width: int) -> dict[str, Any]:
    runs = {}
    size = [f"train.batch_size={batch}", f"model.width={width}"]
    for n in passes:
        for batched in (True, False):
            if n == 1 and not batched:
                continue
            exp = build_experiment(build_config(overrides=BASE + size + ["model.dropout=0.1", f"train.n_mcd={n}"]))
            exp.game.batch_mc_passes = batched
            runs[(n, batched)] = exp
    real = runs[(1, True)].data.data[:batch]
    torch.manual_seed(0)
    z = torch.randn(batch, runs[(1, True)].game.latent_dim)
    times: dict[Any, list[float]] = {key: [] for key in runs}
    forwards: dict[Any, int] = {}

    def evaluate(game) -> None:
        with torch.no_grad():
            fake_d = game.generate(z)
        game.discriminator_loss(real, fake_d, z).backward()
        with game.frozen_discriminator():
            game.generator_loss(real, game.generate(z), z).backward()
        game.zero_grad(set_to_none=True)

    for i in range(warmup + reps):
        for key, exp in runs.items():
            if i == warmup:
                c = Counts()
                uninstall = c.install(exp.game)
            start = time.perf_counter()
            evaluate(exp.game)
            elapsed = time.perf_counter() - start
            if i == warmup:
                uninstall()
                forwards[key] = c.g_forward
            if i >= warmup:
                times[key].append(elapsed)
    base = median_ms(times[(1, True)])
    out = {}
    for (n, batched), t in times.items():
        label = f"n_mcd={n}" + ("" if n == 1 else (" stacked" if batched else " separate"))
        out[label] = {"median_ms": median_ms(t), "ratio_to_n1": median_ms(t) / base,
                      "generator_forwards": forwards[(n, batched)]}
    for n in passes:
        if n > 1:
            out[f"n_mcd={n} separate"]["ratio_to_stacked"] = (
                out[f"n_mcd={n} separate"]["median_ms"] / out[f"n_mcd={n} stacked"]["median_ms"])
    return out


def markdown(title: str, rows: dict[str, dict[str, Any]]) -> str:
    keys = list(next(iter(rows.values())).keys() | set().union(*(r.keys() for r in rows.values())))
    order = [k for k in ("median_ms", "ratio_to_adam", "ratio_to_n1", "ratio_to_stacked", "backward_per_step",
                         "critic_loss_evals", "generator_loss_evals", "generator_forwards") if k in keys]
    lines = [f"### {title}", "", "| | " + " | ".join(order) + " |", "|---" * (len(order) + 1) + "|"]
    for name, row in rows.items():
        cells = [f"{row[k]:.3g}" if isinstance(row.get(k), float) else str(row.get(k, "")) for k in order]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--passes", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--out", type=Path, help="also write the figures as JSON")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {
        "setup": {"torch": torch.__version__, "python": platform.python_version(), "threads": args.threads,
                  "reps": args.reps, "warmup": args.warmup, "base_config": BASE},
        "sam": bench_sam(args.reps, args.warmup),
    }
    passes = tuple(sorted(set([1, *args.passes])))
    for batch, width in ((256, 128), (50, 32)):
        results[f"mc_dropout_b{batch}_w{width}"] = bench_mc_dropout(args.reps, args.warmup, passes, batch, width)
    print(markdown("SAM / ASAM: one alternating step (1 critic + 1 generator step)", results["sam"]))
    print()
    for key, rows in results.items():
        if key.startswith("mc_dropout"):
            _, _, b, w = key.split("_")
            print(markdown(f"MC dropout: critic loss + generator loss with backward (batch {b[1:]}, width {w[1:]})", rows))
            print()
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
