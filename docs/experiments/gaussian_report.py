"""Extra views of the Gaussian sweep (docs/experiments/gaussian.md) from its run directories:

- the weight-EMA generator against the raw one (both are in every checkpoint): chi2_score,
  the generated variance (trace of the covariance / 2; the data's is 1) and the top Hessian
  eigenvalue of L_G, per setting, mean ± sd over seeds;
- a figure of samples of P = 1 and P = 2 (depth 1, first seed) over the 200 training points.

    OMP_NUM_THREADS=1 python docs/experiments/gaussian_report.py --sweep sweeps/gaussian
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


def measure(run_dir: Path) -> dict[str, float]:
    from occamgan.api import load_run
    from occamgan.diagnostics.hessian import sharpness_of_experiment
    from occamgan.metrics.toy import chi2_score
    from occamgan.train.trainer import EVAL_SEED_OFFSET

    run = load_run(run_dir)
    cfg = run.config
    out = {}
    for name, use_ema in (("raw", False), ("ema", True)):
        x = run.sample(cfg.eval.n_samples, seed=cfg.seed + EVAL_SEED_OFFSET, use_ema=use_ema).double()
        out[f"chi2_{name}"] = chi2_score(x)
        out[f"var_{name}"] = float(torch.cov(x.T).trace() / 2)
        out[f"eig_{name}"] = sharpness_of_experiment(run.experiment, use_ema=use_ema)["top_eigenvalue"]
    return out


def ema_table(sweep: Path) -> str:
    plan = json.loads((sweep / "sweep.json").read_text())
    groups: dict[tuple, list[dict]] = {}
    for r in plan["runs"]:
        if (sweep / "runs" / r["name"] / "summary.json").is_file():
            key = (r["point"]["model.depth"], r["point"]["model.latent_dim"])
            groups.setdefault(key, []).append(measure(sweep / "runs" / r["name"]))
    cols = ["chi2_raw", "chi2_ema", "var_raw", "var_ema", "eig_raw", "eig_ema"]
    lines = ["| depth | P | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    for (depth, p), rows in groups.items():
        cells = []
        for c in cols:
            v = [r[c] for r in rows]
            cells.append(f"{statistics.fmean(v):.3g} ± {statistics.stdev(v):.2g}" if len(v) > 1 else f"{v[0]:.3g}")
        lines.append(f"| {depth} | {p} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def samples_figure(sweep: Path, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from occamgan.api import load_run

    plan = json.loads((sweep / "sweep.json").read_text())
    seed = plan["seeds"][0]
    fig, axes = plt.subplots(1, 2, figsize=(7, 3.5), dpi=100, sharex=True, sharey=True)
    for ax, p in zip(axes, (1, 2)):
        run = load_run(sweep / "runs" / f"model.depth=1__model.latent_dim={p}__seed={seed}")
        x = run.sample(2000, seed=0, use_ema=False).numpy()
        data = run.experiment.data.data.numpy()
        ax.scatter(x[:, 0], x[:, 1], s=2, alpha=0.4, color="tab:orange", label="generated")
        ax.scatter(data[:, 0], data[:, 1], s=6, color="tab:blue", label="200 training points")
        ax.set_title(f"depth 1, P = {p}")
        ax.set_aspect("equal")
    axes[0].legend(loc="lower left", fontsize=7, markerscale=2)
    axes[0].set_xlim(-4, 4)
    axes[0].set_ylim(-4, 4)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sweep", type=Path, default=Path("sweeps/gaussian"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(ema_table(args.sweep))
    samples_figure(args.sweep, HERE / "gaussian_samples.png")
    print(f"figure: {HERE / 'gaussian_samples.png'}")


if __name__ == "__main__":
    main()
