"""ring8 with every f-GAN objective, the NS objective and beyond-divergence generator losses.

Reproduce (about 75 CPU-minutes on one core; runs are resumable, finished ones are skipped; a
second worker with --reverse may run alongside, runs are claimed atomically):

    OMP_NUM_THREADS=1 nice -n 10 python docs/experiments/divergences_toy.py --out sweeps/divergences_ring8

Every run is ``occamgan.api.train`` with the library defaults (ring8, MLP G/D depth 2 width 128,
Adam 1e-3 betas (0.5, 0.999), batch 256, 3000 steps, EMA 0.999) and only the objective / generator
loss changed. Prints a markdown table (mean +- sd over seeds) and writes results.json.
``--only LABEL ...`` runs (and tabulates) only those configs, e.g. ``--only ns+G:mean_dist_label_prob_l2``.
"""
from __future__ import annotations

import argparse
import json
import statistics
import traceback
from pathlib import Path

import torch

SEEDS = [29835, 28347, 192377]  # the first three seeds of the Occam paper's code
FGANS = ["gan", "hellinger", "js", "kl", "neyman", "ns", "pearson", "reverse_kl"]
# (critic objective, generator loss): the standard GAN critic with losses beyond divergences, by
# readable name: the four L2 classes on logits (what ids 1-4 meant before they followed the
# author's sigmoid critic) and on probabilities (ids 1-4 now), and the log-space label loss id 14
GENERATOR_LOSSES = ["wgan", "mean_dist_real_l2", "mean_dist_label_l2", "dist_mean_real_l2", "dist_mean_label_l2",
                    "mean_dist_real_prob_l2", "mean_dist_label_prob_l2", "dist_mean_real_prob_l2",
                    "dist_mean_label_prob_l2", "14"]
METRICS = ["modes_covered", "hq_fraction", "w2", "mmd"]


def configs() -> list[tuple[str, str, str]]:
    rows = [(f"fgan_{n}", f"fgan_{n}", "default") for n in FGANS]
    rows.append(("ns", "ns", "default"))
    rows += [(f"ns+G:{g}", "ns", g) for g in GENERATOR_LOSSES]
    return rows


def run_all(out: Path, steps: int, reverse: bool = False, only: list[str] | None = None) -> list[dict]:
    from occamgan.api import train

    from occamgan.errors import TrainingError

    results = []
    jobs = [(c, seed) for c in configs() for seed in SEEDS if not only or c[0] in only]
    for (label, objective, gen_loss), seed in (jobs[::-1] if reverse else jobs):
        run_dir = out / f"{label.replace(':', '_').replace('+', '_')}-s{seed}"
        summary_file, failure_file = run_dir / "summary.json", run_dir / "diverged.txt"
        if not summary_file.is_file() and not failure_file.is_file():
            try:  # a second worker (--reverse) may be running this one: claim it atomically
                (out / f"{run_dir.name}.claim").mkdir(parents=True)
            except FileExistsError:
                continue
            cfg = {"seed": seed, "objective": {"name": objective, "generator_loss": gen_loss},
                   "train": {"steps": steps, "lr_decay": "none"}}
            try:
                train(cfg, out=run_dir, overwrite=True, progress=False)
            except TrainingError as exc:  # the trainer's NaN guard: a non-finite loss
                failure_file.write_text(str(exc))
            except TypeError as exc:
                # the NaN guard itself can fail on a non-finite loss (to_float returns "nan" as a
                # string for JSON); count that as the divergence it reports, nothing else
                if traceback.extract_tb(exc.__traceback__)[-1].name != "_guard":
                    raise
                failure_file.write_text(f"non-finite loss (NaN guard: {exc})")
        if failure_file.is_file():
            results.append({"config": label, "seed": seed, "diverged": True})
            print(label, seed, "diverged:", failure_file.read_text()[:120], flush=True)
            continue
        metrics = json.loads(summary_file.read_text())["metrics"]
        results.append({"config": label, "seed": seed, "diverged": False, **{k: metrics[k] for k in METRICS}})
        print(label, seed, {k: round(metrics[k], 4) for k in METRICS}, flush=True)
    return results


def table(results: list[dict], only: list[str] | None = None) -> str:
    lines = ["| config | " + " | ".join(METRICS) + " | diverged |", "|---" * (len(METRICS) + 2) + "|"]
    for label, *_ in configs():
        if only and label not in only:
            continue
        rows = [r for r in results if r["config"] == label and not r["diverged"]]
        n_failed = sum(1 for r in results if r["config"] == label and r["diverged"])
        cells = []
        for key in METRICS:
            vals = [r[key] for r in rows]
            if not vals:
                cells.append("–")
                continue
            sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
            cells.append(f"{statistics.mean(vals):.3g} ± {sd:.2g}")
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {n_failed}/{n_failed + len(rows)} |")
    return "\n".join(lines)


def montage(out: Path, path: Path, seed: int = SEEDS[0]) -> None:
    """One small panel of 2000 EMA samples per config (first seed), real modes in grey."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from occamgan.api import load_run, sample

    labels = [c[0] for c in configs()]
    cols = 5
    rows = (len(labels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(2.0 * cols, 2.1 * rows), dpi=80)
    for ax, label in zip(axes.ravel(), labels):
        run_dir = out / f"{label.replace(':', '_').replace('+', '_')}-s{seed}"
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(label, fontsize=8)
        if not (run_dir / "summary.json").is_file():
            continue
        run = load_run(run_dir)
        x = sample(run, 2000, seed=1).cpu().numpy()
        centers = run.data.centers.cpu().numpy()
        ax.scatter(centers[:, 0], centers[:, 1], s=60, c="0.8", zorder=0)
        ax.scatter(x[:, 0], x[:, 1], s=0.5, alpha=0.4, c="tab:orange")
        ax.set_xlim(-3, 3)
        ax.set_ylim(-3, 3)
    for ax in axes.ravel()[len(labels):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("sweeps/divergences_ring8"))
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--reverse", action="store_true", help="run the jobs in reverse order (a second worker)")
    parser.add_argument("--montage", type=Path, help="also write a PNG of samples, one panel per config")
    parser.add_argument("--only", nargs="+", help="config labels to run, e.g. ns+G:mean_dist_label_prob_l2")
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = run_all(args.out, args.steps, args.reverse, args.only)
    (args.out / ("results_only.json" if args.only else "results.json")).write_text(json.dumps(results, indent=1))
    print(table(results, args.only))
    if args.montage:
        montage(args.out, args.montage)


if __name__ == "__main__":
    main()
