"""The 2-D Gaussian experiment at the authors' protocol (docs/experiments/gaussian.md).

The protocol needs two things a plain ``occamgan sweep --seeds N`` does not give: the paper's seed
list (not seed + 0..N-1) and a data set drawn anew for every seed (data.seed = seed). So ``run``
starts one sweep per seed, each over the grid of depths x latent dimensions, with
``--set seed=S --set data.seed=S``; the grid points of one seed share its 200 points, so every
comparison below is paired per seed.

    python docs/experiments/gaussian.py run --config configs/gaussian.yaml --out sweeps/gaussian_paper
    python docs/experiments/gaussian.py run --config configs/gaussian_improved.yaml --out sweeps/gaussian_improved
    python docs/experiments/gaussian.py report --sweep sweeps/gaussian_paper --sweep sweeps/gaussian_improved

``report`` prints the tables of gaussian.md: per (depth, P) the mean ± sd over seeds of
chi2_score, the final loss and the three sharpness measures, the per-seed values, and the paired
per-seed comparisons (P = 1 against P >= 2 within a seed; one config against another per run).
"""
from __future__ import annotations

import argparse
import csv
import math
import statistics
import subprocess
import sys
from pathlib import Path

#: the authors' seed list (all_gans.py SEEDS; docs/methods.md section 2); the first five are used
PAPER_SEEDS = (29835, 28347, 192377, 30498, 123817, 16548, 8937, 1827481, 87832, 26564, 65525)
#: the authors' --mlp_depth {0, 1} = occamgan model.depth {0, 2} (docs/methods.md section 2)
DEPTHS = (0, 2)
LATENTS = (1, 2, 3, 5)
SHARPNESS = ("top_eigenvalue", "top_abs_eigenvalue", "bottom_eigenvalue")


def run(config: Path, out: Path, seeds: list[int], depths: list[int], latents: list[int], jobs: int) -> None:
    for seed in seeds:
        cmd = ["occamgan", "sweep", "--config", str(config), "--set", f"seed={seed}", "--set", f"data.seed={seed}",
               "--grid", "model.depth=" + ",".join(map(str, depths)),
               "--grid", "model.latent_dim=" + ",".join(map(str, latents)),
               "--seeds", "1", "--out", str(out / f"seed={seed}"), "--jobs", str(jobs), "--no-plots"]
        print(" ".join(cmd), file=sys.stderr, flush=True)
        subprocess.run(cmd, check=True)


def read_runs(sweep: Path) -> dict[tuple[int, int, int], dict[str, float]]:
    """(depth, P, seed) -> the numbers of that run, from every per-seed sweep under ``sweep``."""
    runs = {}
    for results in sorted(sweep.glob("seed=*/results.csv")):
        with results.open() as fh:
            for row in csv.DictReader(fh):
                if row["status"] != "done":
                    continue
                key = (int(row["model.depth"]), int(row["model.latent_dim"]), int(row["seed"]))
                runs[key] = {k: float(v) for k, v in row.items() if _is_float(v)}
    return runs


def _is_float(v: str) -> bool:
    try:
        float(v)
        return True
    except (TypeError, ValueError):
        return False


def fmt(values: list[float], digits: int = 3) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}g}"
    return f"{statistics.fmean(values):.{digits}g} ± {statistics.stdev(values):.2g}"


def seeds_of(runs) -> list[int]:
    order = {s: i for i, s in enumerate(PAPER_SEEDS)}
    return sorted({k[2] for k in runs}, key=lambda s: order.get(s, len(order) + s))


def main_table(runs) -> str:
    seeds = seeds_of(runs)
    cols = ["chi2_score", "final_loss_g", *SHARPNESS]
    head = ["depth", "P", "runs", "chi2_score", "final loss", "top eig. (Lanczos, 4 batches)",
            "top abs. eig. (power, 1 batch)", "bottom eig.", "per-seed chi2_score"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for depth in sorted({k[0] for k in runs}):
        for p in sorted({k[1] for k in runs}):
            rows = [runs[(depth, p, s)] for s in seeds if (depth, p, s) in runs]
            cells = [fmt([r[c] for r in rows if c in r]) for c in cols]
            per_seed = ", ".join(f"{runs[(depth, p, s)]['chi2_score']:.2f}" if (depth, p, s) in runs else "-"
                                 for s in seeds)
            lines.append(f"| {depth} | {p} | {len(rows)} | " + " | ".join(cells) + f" | {per_seed} |")
    return "\n".join(lines)


def per_seed_table(runs, column: str, digits: int = 3) -> str:
    seeds = seeds_of(runs)
    lines = ["| depth | P | " + " | ".join(map(str, seeds)) + " |", "|---|---|" + "---|" * len(seeds)]
    for depth in sorted({k[0] for k in runs}):
        for p in sorted({k[1] for k in runs}):
            cells = [f"{runs[(depth, p, s)][column]:.{digits}g}" if (depth, p, s) in runs and column in
                     runs[(depth, p, s)] else "-" for s in seeds]
            lines.append(f"| {depth} | {p} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired_p1(runs) -> str:
    """Within each seed (same data, same init seed): is P = 1 worse (chi2), at a higher loss, or
    sharper than every P >= 2 model of the same depth? Sharper means a larger top eigenvalue, a
    larger |top_abs_eigenvalue|, a more negative bottom eigenvalue. Counts over seeds, and the
    smallest margin (positive: P = 1 beyond every P >= 2 in that direction)."""
    seeds = seeds_of(runs)
    head = ["depth", "measure", "P = 1 beyond every P >= 2 (seeds)", "smallest margin", "mean P = 1",
            "mean P >= 2"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for depth in sorted({k[0] for k in runs}):
        for column in ("chi2_score", "final_loss_g", *SHARPNESS):
            wins, margins, ones, others = 0, [], [], []
            for s in seeds:
                one = runs.get((depth, 1, s), {}).get(column)
                rest = [runs[(depth, p, s)][column] for p in LATENTS if p > 1 and (depth, p, s) in runs
                        and column in runs[(depth, p, s)]]
                if one is None or not rest:
                    continue
                sign = {"top_abs_eigenvalue": None, "bottom_eigenvalue": -1.0}.get(column, 1.0)
                value = abs(one) if sign is None else sign * one
                rest_v = [abs(v) for v in rest] if sign is None else [sign * v for v in rest]
                wins += value > max(rest_v)
                margins.append(value - max(rest_v))
                ones.append(one)
                others += rest
            if margins:
                column = {"top_abs_eigenvalue": "abs(top_abs_eigenvalue)",
                          "bottom_eigenvalue": "bottom_eigenvalue (more negative)"}.get(column, column)
                lines.append(f"| {depth} | {column} | {wins}/{len(margins)} | {min(margins):+.3g} | "
                             f"{statistics.fmean(ones):.3g} | {statistics.fmean(others):.3g} |")
    return "\n".join(lines)


def paired_configs(a, b, name_a: str, name_b: str) -> str:
    """Per run (depth, P, seed) present in both: b - a of chi2_score, and how many seeds b wins."""
    seeds = seeds_of(a)
    head = ["depth", "P", f"chi2 {name_a}", f"chi2 {name_b}", "mean paired difference", f"seeds {name_b} better",
            "per-seed difference"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for depth in sorted({k[0] for k in a}):
        for p in sorted({k[1] for k in a}):
            both = [s for s in seeds if (depth, p, s) in a and (depth, p, s) in b]
            if not both:
                continue
            xa = [a[(depth, p, s)]["chi2_score"] for s in both]
            xb = [b[(depth, p, s)]["chi2_score"] for s in both]
            diff = [y - x for x, y in zip(xa, xb)]
            lines.append(f"| {depth} | {p} | {fmt(xa)} | {fmt(xb)} | {statistics.fmean(diff):+.3f} | "
                         f"{sum(d < 0 for d in diff)}/{len(diff)} | " + ", ".join(f"{d:+.2f}" for d in diff) + " |")
    return "\n".join(lines)


def passes(runs, bar: float = 0.15) -> str:
    p2 = [v["chi2_score"] for k, v in runs.items() if k[1] >= 2]
    p1 = [v["chi2_score"] for k, v in runs.items() if k[1] == 1]
    return (f"P >= 2: {sum(x < bar for x in p2)}/{len(p2)} runs below {bar} (range {min(p2):.3f}-{max(p2):.3f}); "
            f"P = 1: range {min(p1):.3f}-{max(p1):.3f}")


def report(sweeps: list[Path]) -> None:
    loaded = [(sweep.name, read_runs(sweep)) for sweep in sweeps]
    for name, runs in loaded:
        print(f"## {name} ({len(runs)} runs, seeds {', '.join(map(str, seeds_of(runs)))})\n")
        print(main_table(runs), "\n")
        print(passes(runs), "\n")
        print("P = 1 against P >= 2, paired per seed:\n")
        print(paired_p1(runs), "\n")
        for column in SHARPNESS:
            print(f"{column} per seed:\n")
            print(per_seed_table(runs, column), "\n")
        converged = [v.get("top_abs_converged", math.nan) for v in runs.values()]
        print(f"power iteration converged within 20 steps in {sum(c == 1.0 for c in converged)}/{len(converged)} runs\n")
    for (name_a, a), (name_b, b) in zip(loaded, loaded[1:]):
        print(f"## {name_b} against {name_a}, paired per seed\n")
        print(paired_configs(a, b, name_a, name_b), "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    r = sub.add_parser("run", help="one sweep per seed (seed = data.seed), depths x latent dimensions")
    r.add_argument("--config", type=Path, default=Path("configs/gaussian.yaml"))
    r.add_argument("--out", type=Path, default=Path("sweeps/gaussian_paper"))
    r.add_argument("--seeds", type=int, nargs="+", default=list(PAPER_SEEDS[:5]))
    r.add_argument("--depths", type=int, nargs="+", default=list(DEPTHS))
    r.add_argument("--latents", type=int, nargs="+", default=list(LATENTS))
    r.add_argument("--jobs", type=int, default=1)
    rep = sub.add_parser("report", help="the tables of gaussian.md from one or more such sweeps")
    rep.add_argument("--sweep", type=Path, action="append", required=True)
    args = ap.parse_args()
    if args.what == "run":
        run(args.config, args.out, args.seeds, args.depths, args.latents, args.jobs)
    else:
        report(args.sweep)


if __name__ == "__main__":
    main()
