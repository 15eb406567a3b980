"""The Occam ablation (issue 3, item 9): each strategy of Filippone & Linhard switched on alone
around a baseline, on ring8 with the non-saturating and the WGAN-div objectives, 3 seeds.

One ``occamgan sweep`` per factor and objective (one-factor-at-a-time; the baseline runs once, in
the sigma sweep, whose first value is 0):

    sigma       regularizers.sigma = 0 (baseline), 0.05, 0.1, 0.2
    grad_reg    regularizers.grad_reg = 0.1, 1
    asam        train.sam_rho = 0.05, 0.5 (adaptive SAM on both players)
    batch       train.batch_size = 16, 256 (baseline 64; same number of steps)
    dropout     model.dropout = 0.1 x train.n_mcd = 1, 4

Reproduce (resumable: rerunning skips finished runs):

    OMP_NUM_THREADS=1 nice -n 10 python docs/experiments/occam_ablation.py run --out sweeps/ablation
    python docs/experiments/occam_ablation.py report --out sweeps/ablation   # table + plot

The report recomputes the sharpness of the batch-size runs on batches of 64 (the baseline's), so
that every top eigenvalue is measured the same way (eval.sharpness uses train.batch_size).
"""
from __future__ import annotations

import argparse
import csv
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
OBJECTIVES = ["ns", "wgan_div"]
SEEDS = 3
#: factor -> grid axes (the sweep's product)
FACTORS = {
    "sigma": ["regularizers.sigma=0,0.05,0.1,0.2"],
    "grad_reg": ["regularizers.grad_reg=0.1,1"],
    "asam": ["train.sam_rho=0.05,0.5"],
    "batch": ["train.batch_size=16,256"],
    "dropout": ["model.dropout=0.1", "train.n_mcd=1,4"],
}
METRICS = ["modes_covered", "hq_fraction", "w2", "mmd", "top_eigenvalue"]
SHARPNESS_BATCH = 64


def config_of(objective: str) -> Path:
    return ROOT / "configs" / "ablation" / f"ring8_{objective}.yaml"


def run(out: Path, jobs: int | None) -> None:
    from occamgan.sweep import run_sweep

    for objective in OBJECTIVES:
        for factor, grid in FACTORS.items():
            print(f"== {objective} / {factor}", file=sys.stderr, flush=True)
            run_sweep(config_of(objective), grid, SEEDS, out / objective / factor, jobs=jobs,
                      log=lambda m: print(m, file=sys.stderr, flush=True))


def label_of(factor: str, row: dict) -> str:
    if factor == "sigma" and float(row["regularizers.sigma"]) == 0:
        return "baseline"
    if factor == "dropout":
        return f"dropout 0.1, n_mcd {row['train.n_mcd']}"
    key = FACTORS[factor][0].split("=")[0]
    return f"{key.split('.')[-1]} {row[key]}"


def sharpness_at_batch(run_dir: Path, batch: int) -> float:
    """Top eigenvalue of L_G of a finished run measured on batches of ``batch`` points (as the
    end-of-run metric does on train.batch_size)."""
    from occamgan.api import load_run
    from occamgan.diagnostics.hessian import sharpness
    from occamgan.metrics.sharpness import SHARPNESS_SEED_OFFSET

    loaded = load_run(run_dir)
    cfg = loaded.config
    values = sharpness(loaded.game, loaded.data.data, batch, n_batches=cfg.eval.sharpness_batches, k=1,
                       seed=cfg.seed + SHARPNESS_SEED_OFFSET,
                       generator=loaded.ema.generator if cfg.eval.use_ema else None,
                       reduce=cfg.eval.sharpness_reduce)
    return values["top_eigenvalue"]


def collect(out: Path) -> dict[str, list[tuple[str, list[dict]]]]:
    """objective -> [(setting label, rows of its seeds)] in the order of FACTORS."""
    table: dict[str, list[tuple[str, list[dict]]]] = {}
    for objective in OBJECTIVES:
        settings: dict[str, list[dict]] = {}
        for factor in FACTORS:
            path = out / objective / factor / "results.csv"
            if not path.is_file():
                continue
            with open(path, newline="") as fh:
                for row in csv.DictReader(fh):
                    if row["status"] == "done" and factor == "batch":
                        row["top_eigenvalue"] = sharpness_at_batch(out / objective / factor / "runs" / row["run"],
                                                                   SHARPNESS_BATCH)
                    settings.setdefault(label_of(factor, row), []).append(row)
        table[objective] = list(settings.items())
    return table


def cell(rows: list[dict], metric: str) -> str:
    values = [float(r[metric]) for r in rows if r["status"] == "done" and r.get(metric) not in (None, "")]
    if not values:
        return "—"
    text = f"{statistics.fmean(values):.3g}"
    return text + (f" ± {statistics.stdev(values):.2g}" if len(values) > 1 else "")


def report(out: Path) -> None:
    table = collect(out)
    for objective, settings in table.items():
        print(f"\n**{objective}** (mean ± sd over seeds; runs = finished / planned)\n")
        print("| setting | runs | " + " | ".join(METRICS) + " | steps/s |")
        print("|---|---|" + "---|" * (len(METRICS) + 1))
        for label, rows in settings:
            done = sum(r["status"] == "done" for r in rows)
            cells = [cell(rows, m) for m in METRICS] + [cell(rows, "steps_per_second")]
            print(f"| {label} | {done}/{len(rows)} | " + " | ".join(cells) + " |")
    plot(table, HERE / "occam_ablation.png")


def plot(table: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), dpi=100, sharey=True)
    for ax, (objective, settings) in zip(axes, table.items()):
        labels = [label for label, _ in settings]
        for i, (_, rows) in enumerate(settings):
            values = [float(r["hq_fraction"]) for r in rows if r["status"] == "done"]
            ax.scatter([i] * len(values), values, s=12, color="gray", alpha=0.6)
            if values:
                ax.errorbar(i, statistics.fmean(values), yerr=statistics.stdev(values) if len(values) > 1 else 0,
                            fmt="o", color="tab:blue", capsize=3)
        ax.axhline(statistics.fmean(float(r["hq_fraction"]) for r in settings[0][1] if r["status"] == "done"),
                   color="tab:red", lw=0.8, ls="--")
        ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=7)
        ax.set_title(f"ring8, {objective}")
    axes[0].set_ylabel("high-quality fraction (raw G)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    print(f"\nplot: {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["run", "report"])
    ap.add_argument("--out", type=Path, default=Path("sweeps/ablation"))
    ap.add_argument("--jobs", type=int, default=None)
    args = ap.parse_args()
    if args.what == "run":
        import torch

        torch.set_num_threads(1)
        run(args.out, args.jobs)
    else:
        report(args.out)


if __name__ == "__main__":
    main()
