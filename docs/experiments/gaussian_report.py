"""Extra views of the Gaussian runs (docs/experiments/gaussian.md) from their run directories and
checkpoints, for sweeps written by docs/experiments/gaussian.py (one sweep per seed):

- the authors' sharpness on the EXACT last training batch: the batch-sampler state in the final
  checkpoint gives the 50 points of the last step (diagnostics/hessian.py last_training_batch),
  measured by power iteration (20 steps, rel. tol 1e-4) with fresh latents, raw generator, as
  their script does; next to it the same measure on the seeded stand-in batch that the
  end-of-run metric uses (results.csv: top_abs_eigenvalue);
- the weight-EMA generator against the raw one (both are in every checkpoint): chi2_score, the
  generated variance (trace of the covariance / 2) and the top Hessian eigenvalue of L_G;
- the 200 training points' own chi2_score and variance (they differ per seed: data.seed = seed);
- a figure of samples of P = 1 and P = 2 (the authors' depth 1 = model.depth 2, first seed).

    OMP_NUM_THREADS=1 python docs/experiments/gaussian_report.py --sweep sweeps/gaussian_paper
"""
from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
#: the authors' seed list (gaussian.py), for the order of per-seed values
PAPER_SEEDS = (29835, 28347, 192377, 30498, 123817, 16548, 8937, 1827481, 87832, 26564, 65525)


def seed_order(seeds) -> list[int]:
    rank = {s: i for i, s in enumerate(PAPER_SEEDS)}
    return sorted(seeds, key=lambda s: (rank.get(s, len(rank)), s))


def run_dirs(sweep: Path) -> dict[tuple[int, int, int], Path]:
    """(depth, P, seed) -> run directory, over the per-seed sweeps under ``sweep``."""
    out = {}
    for run in sorted(sweep.glob("seed=*/runs/*")):
        parts = dict(item.split("=", 1) for item in run.name.split("__"))
        if (run / "summary.json").is_file():
            out[(int(parts["model.depth"]), int(parts["model.latent_dim"]), int(parts["seed"]))] = run
    return out


def measure(run_dir: Path) -> dict[str, float]:
    from occamgan.diagnostics.hessian import last_training_batch
    from occamgan.evaluation import EVAL_SEED_OFFSET, evaluate_metrics, run_metrics, trained_context
    from occamgan.metrics.toy import chi2_score
    from occamgan.runs import load_run
    from occamgan.train.checkpoint import load_checkpoint

    run = load_run(run_dir)
    cfg = run.config
    out: dict[str, float] = {}
    for name, use_ema in (("raw", False), ("ema", True)):
        x = run.sample(cfg.eval.n_samples, seed=cfg.seed + EVAL_SEED_OFFSET, use_ema=use_ema).double()
        out[f"chi2_{name}"] = chi2_score(x)
        out[f"var_{name}"] = float(torch.cov(x.T).trace() / 2)
        top = evaluate_metrics(["sharpness"], run, use_ema=use_ema, params={"sharpness_methods": ["lanczos_top"]})
        out[f"eig_{name}"] = top["top_eigenvalue"]
    state = load_checkpoint(run.files.checkpoint_path)["sampler"]
    ctx = trained_context(run, use_ema=False, params={"sharpness_methods": ["power_abs"]})
    ctx.last_batch = last_training_batch(run.data.data, state, cfg.train.batch_size)
    exact = run_metrics(["sharpness"], ctx)
    out["abs_last"] = exact["top_abs_eigenvalue"]
    out["abs_last_converged"] = exact["top_abs_converged"]
    stand_in = evaluate_metrics(["sharpness"], run, use_ema=False, params={"sharpness_methods": ["power_abs"]})
    out["abs_seeded"] = stand_in["top_abs_eigenvalue"]
    data = run.data.data.double()
    out["chi2_data"] = chi2_score(data)
    out["var_data"] = float(torch.cov(data.T).trace() / 2)
    return out


def tables(sweep: Path) -> str:
    measured = {key: measure(path) for key, path in run_dirs(sweep).items()}
    groups: dict[tuple[int, int], list[dict[str, float]]] = {}
    for (depth, p, _), values in sorted(measured.items()):
        groups.setdefault((depth, p), []).append(values)

    def cell(rows, c):
        v = [r[c] for r in rows]
        return f"{statistics.fmean(v):.3g} ± {statistics.stdev(v):.2g}" if len(v) > 1 else f"{v[0]:.3g}"

    text = []
    cols = ["abs_last", "abs_seeded", "eig_raw"]
    text += ["The authors' sharpness (power iteration, 1 batch, raw generator): exact last batch vs the seeded "
             "stand-in, and ours (Lanczos top, 4 batches):", "",
             "| depth | P | " + " | ".join(cols) + " | converged (last batch) |", "|---|---|" + "---|" * (len(cols) + 1)]
    for (depth, p), rows in groups.items():
        conv = sum(r["abs_last_converged"] == 1.0 for r in rows)
        text.append(f"| {depth} | {p} | " + " | ".join(cell(rows, c) for c in cols) + f" | {conv}/{len(rows)} |")
    seeds = seed_order({k[2] for k in measured})
    text.append(f"Per-seed margins below in the seed order {', '.join(map(str, seeds))}:")
    text.append("")
    for depth in sorted({k[0] for k in measured}):
        for c in ("abs_last", "abs_seeded"):
            wins, margins = 0, []
            for s in seeds:
                one = measured.get((depth, 1, s))
                rest = [v for k, v in measured.items() if k[0] == depth and k[1] >= 2 and k[2] == s]
                if one is None or not rest:
                    continue
                margin = abs(one[c]) - max(abs(r[c]) for r in rest)
                wins += margin > 0
                margins.append(margin)
            if margins:
                text.append(f"- depth {depth}, {c}: |P = 1| above every |P >= 2| on {wins}/{len(margins)} seeds "
                            f"(margins " + ", ".join(f"{m:+.2f}" for m in margins) + ")")
    cols = ["chi2_raw", "chi2_ema", "var_raw", "var_ema", "eig_raw", "eig_ema"]
    text += ["", "Raw against EMA generator:", "", "| depth | P | " + " | ".join(cols) + " |",
             "|---|---|" + "---|" * len(cols)]
    for (depth, p), rows in groups.items():
        text.append(f"| {depth} | {p} | " + " | ".join(cell(rows, c) for c in cols) + " |")
    text += ["", "The training points of each seed (chi2_score against N(0, I), variance = trace(cov)/2):", ""]
    for s in seeds:
        one = next(v for k, v in measured.items() if k[2] == s)
        text.append(f"- seed {s}: chi2_score {one['chi2_data']:.3f}, variance {one['var_data']:.3f}")
    return "\n".join(text)


def samples_figure(sweep: Path, path: Path, depth: int = 2) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from occamgan.runs import load_run

    dirs = run_dirs(sweep)
    seed = min((k[2] for k in dirs), key=lambda s: (s != 29835, s))
    fig, axes = plt.subplots(1, 2, figsize=(7, 3.5), dpi=100, sharex=True, sharey=True)
    for ax, p in zip(axes, (1, 2)):
        run = load_run(dirs[(depth, p, seed)])
        x = run.sample(2000, seed=0, use_ema=False).numpy()
        data = run.data.data.numpy()
        ax.scatter(x[:, 0], x[:, 1], s=2, alpha=0.4, color="tab:orange", label="generated")
        ax.scatter(data[:, 0], data[:, 1], s=6, color="tab:blue", label="200 training points")
        ax.set_title(f"model.depth {depth} (authors' depth 1), P = {p}", fontsize=9)
        ax.set_aspect("equal")
    axes[0].legend(loc="lower left", fontsize=7, markerscale=2)
    axes[0].set_xlim(-4, 4)
    axes[0].set_ylim(-4, 4)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sweep", type=Path, default=Path("sweeps/gaussian_paper"))
    ap.add_argument("--no-figure", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(tables(args.sweep))
    if not args.no_figure:
        samples_figure(args.sweep, HERE / "gaussian_samples.png")
        print(f"figure: {HERE / 'gaussian_samples.png'}")


if __name__ == "__main__":
    main()
