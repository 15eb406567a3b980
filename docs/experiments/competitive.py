"""Experiments of docs/experiments/competitive.md: competitive gradient descent at work.

    python docs/experiments/competitive.py bilinear      # seconds
    python docs/experiments/competitive.py two_modes     # CGD vs alternating Adam on 2 modes
    python docs/experiments/competitive.py wgan          # ACGD vs Adam, WGAN with/without GP
    python docs/experiments/competitive.py wgan --report # table from finished runs only

Runs go to sweeps/competitive/ (git-ignored); figures next to this file. Every run uses one
thread (``OMP_NUM_THREADS=1``); ``--jobs`` runs WGAN configurations in parallel processes.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "src"))

from occamgan.build import build_game  # noqa: E402
from occamgan.config import build_config, config_section# noqa: E402
from occamgan.data.base import DataSource  # noqa: E402
from occamgan.game import Game  # noqa: E402
from occamgan.metrics.toy import mode_stats  # noqa: E402
from occamgan.plugins import OBJECTIVES, UPDATE_RULES  # noqa: E402

SWEEP = ROOT / "sweeps" / "competitive"


def save_small(fig, name: str) -> None:
    """Save a figure next to this file as a 64-colour PNG (scatter plots stay small)."""
    from PIL import Image

    path = HERE / name
    fig.savefig(path)
    plt.close(fig)
    Image.open(path).convert("RGB").quantize(colors=64).save(path, optimize=True)


# ------------------------------------------------------------------------------ bilinear
class Point(nn.Module):
    def __init__(self, value: float):
        super().__init__()
        self.x = nn.Parameter(torch.tensor([value], dtype=torch.float64))

    def forward(self, z):
        return self.x.expand(len(z), 1)


class Scale(nn.Module):
    """D(u) = -a y u; with real data 0 the WGAN value -L_D is f = a x y."""

    def __init__(self, value: float, a: float):
        super().__init__()
        self.y, self.a = nn.Parameter(torch.tensor([value], dtype=torch.float64)), a

    def forward(self, u):
        return -self.a * self.y * u


def bilinear(args: argparse.Namespace) -> None:
    """f = a x y, x minimises, y maximises, eta 0.2 from (0.5, 0.5) (CGD paper; docs/methods.md section 7)."""
    eta, a, steps = 0.2, 1.0, args.steps or 100
    zeros = lambda: torch.zeros(1, 1, dtype=torch.float64)  # noqa: E731
    traj = {}
    for name in ("simultaneous GDA", "alternating GDA", "CGD"):
        game = Game(Point(0.5), Scale(0.5, a), OBJECTIVES.get("wgan")(config_section("objective", clip=1e9)), latent_dim=1)
        x, y = game.generator.x, game.discriminator.y
        rule = UPDATE_RULES.get("cgd")(game, build_config({"train": {"lr_g": eta, "lr_d": eta, "cg_tol": 1e-28}}).train)
        path = [(x.item(), y.item())]
        for _ in range(steps):
            if name == "CGD":
                rule.step(game, zeros)
            else:
                with torch.no_grad():
                    gx, gy = a * y.clone(), a * x.clone()  # df/dx, df/dy
                    x -= eta * gx
                    y += eta * (a * x if name == "alternating GDA" else gy)
            path.append((x.item(), y.item()))
        traj[name] = path
    fig, ax = plt.subplots(figsize=(4.6, 4.6), dpi=110)
    for name, path in traj.items():
        xs, ys = zip(*path)
        ax.plot(xs, ys, lw=1.2, label=f"{name}: |(x, y)| = {math.hypot(xs[-1], ys[-1]):.3g}")
    ax.plot([0.5], [0.5], "ko", ms=4)
    ax.plot([0], [0], "k*", ms=9, label="equilibrium")
    ax.set_xlabel("x (minimises a x y)")
    ax.set_ylabel("y (maximises)")
    ax.set_title(f"f = xy, eta = {eta}, {steps} steps")
    ax.set_aspect("equal")
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    save_small(fig, "competitive_bilinear.png")
    for name, path in traj.items():
        print(f"{name:18s} final (x, y) = ({path[-1][0]:+.4f}, {path[-1][1]:+.4f}), "
              f"radius {math.hypot(*path[-1]):.4g} (start {math.hypot(0.5, 0.5):.4g})")


# ------------------------------------------------------------------------------ two modes
TWO_MODE_CENTERS = torch.tensor([[1 / math.sqrt(2), 1 / math.sqrt(2)], [1.0, 0.0]])


def two_mode_data(n: int = 10_000, std: float = 0.1) -> DataSource:
    gen = torch.Generator().manual_seed(0)
    idx = torch.randint(2, (n,), generator=gen)
    x = TWO_MODE_CENTERS[idx] + std * torch.randn(n, 2, generator=gen)
    return DataSource("two_modes", x, centers=TWO_MODE_CENTERS, std=std)


def mode_fractions(samples: torch.Tensor, data: DataSource, n_std: float = 3.0) -> list[float]:
    """Fraction of samples within n_std sd of each mode (the modes are 0.77 apart = 7.7 sd)."""
    d = torch.cdist(samples.double(), data.centers.double())
    near, idx = d.min(1)
    ok = near <= n_std * data.std
    return [float(((idx == k) & ok).double().mean()) for k in range(len(data.centers))]


class PlainGDA:
    """Simultaneous gradient descent-ascent with plain steps (no Adam): each player moves by
    -eta * grad of its own loss from the same point; the CGD paper's baseline."""

    def __init__(self, game: Game, cfg):
        self.eta_g, self.eta_d = cfg.lr_g, cfg.lr_d

    def step(self, game: Game, next_batch) -> dict:
        real = next_batch()
        loss_d, loss_g = game.losses(real, game.sample_latent(len(real)))
        gen, crit = game.generator_parameters(), game.discriminator_parameters()
        g_g = torch.autograd.grad(loss_g, gen, retain_graph=True)
        g_d = torch.autograd.grad(loss_d, crit)
        with torch.no_grad():
            for p, g in zip(gen, g_g):
                p -= self.eta_g * g
            for p, g in zip(crit, g_d):
                p -= self.eta_d * g
        return {}


def two_modes_run(name: str, overrides: dict, args: argparse.Namespace, seed: int) -> dict:
    torch.set_num_threads(1)
    cached = SWEEP / "two_modes" / f"{slug(name)}-s{seed}.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    data = two_mode_data()
    tree = {
        "seed": seed,
        "model": {"name": "mlp", "latent_dim": args.latent, "width": args.width, "depth": args.depth},
        "objective": {"name": "minimax"},
        "train": {"batch_size": 256, "lr_decay": "none", "cg_max_iter": args.cg_max_iter} | overrides,
    }
    plain = tree["train"].pop("update") == "plain_gda"
    tree["train"]["update"] = "alternating" if plain else overrides["update"]
    cfg = build_config(tree)
    torch.manual_seed(seed)
    game = build_game(cfg, data, torch.device("cpu"))
    rule = (PlainGDA if plain else UPDATE_RULES.get(cfg.train.update))(game, cfg.train)
    sampler = data.batch_sampler(256, seed=seed + 1)
    z_eval = torch.randn(2000, args.latent, generator=torch.Generator().manual_seed(123))
    history, snaps, iters = [], {}, []
    snap_at = {int(args.steps * f) for f in (0.1, 0.25, 0.5, 1.0)}
    for step in range(1, args.steps + 1):
        stats = rule.step(game, sampler.next)
        iters.append(stats.get("solver_iters", 0))
        if step % args.every == 0 or step in snap_at:
            with torch.no_grad():
                fake = game.generate(z_eval)
            if not torch.isfinite(fake).all():
                break
            history.append((step, *mode_fractions(fake, data)))
            if step in snap_at:
                snaps[step] = fake.numpy().tolist()
    covered, hq = mode_stats(fake, data.centers, data.std, 3.0, 0.1)
    result = {"name": name, "seed": seed, "history": history, "snaps": snaps, "modes_covered": covered,
              "hq_fraction": hq, "mean_solver_iters": statistics.mean(iters) if iters else 0.0}
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps(result))
    return result


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")


TWO_MODE_RULES = {
    "CGD (eta 0.1)": {"update": "cgd", "lr_g": 0.1, "lr_d": 0.1},
    "simultaneous GDA (eta 0.1)": {"update": "plain_gda", "lr_g": 0.1, "lr_d": 0.1},
    "alternating Adam (1e-3)": {"update": "alternating", "lr_g": 1e-3, "lr_d": 1e-3},
    "alternating Adam (1e-2)": {"update": "alternating", "lr_g": 1e-2, "lr_d": 1e-2},
    "simultaneous Adam (1e-3)": {"update": "simultaneous", "lr_g": 1e-3, "lr_d": 1e-3},
}


def two_modes(args: argparse.Namespace) -> None:
    args.steps = args.steps or 1500
    jobs = [(name, ov, args, seed) for name, ov in TWO_MODE_RULES.items() for seed in range(args.seeds)]
    if args.report:
        jobs = [j for j in jobs if (SWEEP / "two_modes" / f"{slug(j[0])}-s{j[3]}.json").is_file()]
    with ProcessPoolExecutor(args.jobs) as pool:
        results = list(pool.map(_two_modes_job, jobs))
    plot_two_modes(results, args)
    print("| rule | seed | modes covered (of 2) | hq fraction | near mode 1 / mode 2 at the end | "
          "share of mode 1 among them, last half: sd (min-max) | settled at step | mean CG iters |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        last = r["history"][-1]
        half = [h for h in r["history"] if h[0] > args.steps / 2]
        share = [h[1] / max(h[1] + h[2], 1e-9) for h in half]
        print(f"| {r['name']} | {r['seed']} | {r['modes_covered']} | {r['hq_fraction']:.2f} | "
              f"{last[1]:.2f} / {last[2]:.2f} | {statistics.pstdev(share):.3f} ({min(share):.2f}-{max(share):.2f}) | "
              f"{settled_at(r['history'])} | {r['mean_solver_iters']:.1f} |")


def settled_at(history: list) -> str:
    """First evaluation step after which mode 1's share among the samples near a mode stays in
    [0.35, 0.65] to the end ("never" if it does not)."""
    shares = [(h[0], h[1] / (h[1] + h[2]) if h[1] + h[2] > 0 else -1.0) for h in history]
    for i, (step, _) in enumerate(shares):
        if all(0.35 <= x <= 0.65 for _, x in shares[i:]):
            return str(step)
    return "never"


def _two_modes_job(job):
    return two_modes_run(*job)


def plot_two_modes(results: list[dict], args: argparse.Namespace) -> None:
    seed0 = [r for r in results if r["seed"] == 0]
    steps = sorted(int(s) for s in seed0[0]["snaps"])
    fig, axes = plt.subplots(len(seed0), len(steps) + 1, figsize=(2.1 * (len(steps) + 1), 2.1 * len(seed0)), dpi=72)
    data = two_mode_data(1000)
    for row, r in zip(axes, seed0):
        for ax, s in zip(row, steps):
            pts = torch.tensor(r["snaps"].get(str(s), r["snaps"].get(s, [])))[:1000]
            ax.scatter(data.data[:, 0], data.data[:, 1], s=1, c="tab:blue", alpha=0.3)
            if len(pts):
                ax.scatter(pts[:, 0], pts[:, 1], s=1, c="tab:orange", alpha=0.4)
            ax.set_xlim(-0.5, 2.0)
            ax.set_ylim(-1.0, 1.5)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"step {s}", fontsize=8)
        row[0].set_ylabel(r["name"], fontsize=8)
        h = torch.tensor(r["history"])
        row[-1].plot(h[:, 0], h[:, 1], lw=0.8, label="mode (0.71, 0.71)")
        row[-1].plot(h[:, 0], h[:, 2], lw=0.8, label="mode (1, 0)")
        row[-1].set_ylim(0, 1)
        row[-1].set_title("share near each mode", fontsize=8)
        row[-1].tick_params(labelsize=6)
    axes[0][-1].legend(fontsize=6)
    fig.tight_layout()
    save_small(fig, "competitive_two_modes.png")


# ------------------------------------------------------------------------------ WGAN
WGAN_RULES = {
    # name: (update, objective); GP runs of ACGD use the general-sum solver because the lead's
    # wgan_gp objective is flagged general-sum (the math is the same step: the penalty sees
    # detached fakes, so it has no generator gradient)
    ("acgd", False): ("acgd", "wgan"),
    ("adam", False): ("alternating", "wgan"),
    ("acgd", True): ("gacgd", "wgan_gp"),
    ("adam", True): ("alternating", "wgan_gp"),
    # the usual WGAN-GP recipe: 5 critic steps per generator step, betas (0.5, 0.9)
    ("adam5", True): ("alternating", "wgan_gp"),
}
RULE_LABEL = {"acgd": "ACGD", "adam": "Adam", "adam5": "Adam, n_critic 5, betas (0.5, 0.9)"}


def wgan_overrides(data: str, rule: str, gp: bool, seed: int, args: argparse.Namespace) -> list[str]:
    update, objective = WGAN_RULES[(rule, gp)]
    recipe = ["train.n_critic=5", "train.betas=[0.5,0.9]"] if rule == "adam5" else ["train.n_critic=1"]
    return recipe + [
        f"seed={seed}", f"data.name={data}", f"objective.name={objective}", "objective.clip=1e9",
        f"train.update={update}", f"train.steps={args.steps}", "train.lr_decay=none", "train.batch_size=256",
        f"train.lr_g={args.lr}", f"train.lr_d={args.lr}",
        f"model.width={args.width}", f"model.depth={args.depth}", "train.log_every=25",
        f"train.checkpoint_every={args.steps}", "eval.use_ema=false", "train.device=cpu",
    ]


def wgan_run(job) -> str:
    data, rule, gp, seed, args = job
    from occamgan import api

    torch.set_num_threads(1)
    out = SWEEP / "wgan" / f"{data}-{rule}-{'gp' if gp else 'nogp'}-s{seed}"
    if (out / "summary.json").is_file():
        return str(out)
    try:
        api.train(None, overrides=wgan_overrides(data, rule, gp, seed, args), out=out, overwrite=True, progress=False)
    except Exception as exc:  # a diverged run is a result: record it
        out.mkdir(parents=True, exist_ok=True)
        (out / "failed.txt").write_text(f"{type(exc).__name__}: {exc}")
    return str(out)


def wgan(args: argparse.Namespace) -> None:
    args.steps = args.steps or 2000
    jobs = [(d, r, gp, s, args) for s in range(args.seeds) for d in ("ring8", "grid25")
            for (r, gp) in WGAN_RULES]
    if not args.report:
        with ProcessPoolExecutor(args.jobs) as pool:
            for path in pool.map(wgan_run, jobs):
                print("done", path, flush=True)
    rows = {}
    for d, r, gp, s, _ in jobs:
        out = SWEEP / "wgan" / f"{d}-{r}-{'gp' if gp else 'nogp'}-s{s}"
        if (out / "summary.json").is_file():
            m = json.loads((out / "summary.json").read_text())["metrics"]
            rows.setdefault((d, r, gp), []).append((m["modes_covered"], m["hq_fraction"], m["w2"], s))
        elif (out / "failed.txt").is_file():
            rows.setdefault((d, r, gp), []).append(("diverged", None, None, s))
    print("| data | rule | GP | seeds | modes covered (per seed) | hq fraction (mean, per seed) | W2 (mean, per seed) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for (d, r, gp), vals in rows.items():
        ok = [v for v in vals if v[1] is not None]
        fmt = lambda xs: ", ".join(f"{x:.2f}" for x in xs)  # noqa: E731
        modes = ", ".join(str(v[0]) for v in vals)
        hq = f"{statistics.mean(v[1] for v in ok):.2f} ({fmt(v[1] for v in ok)})" if ok else "-"
        w2 = f"{statistics.mean(v[2] for v in ok):.3f} ({fmt(v[2] for v in ok)})" if ok else "-"
        print(f"| {d} | {RULE_LABEL[r]} | {'10' if gp else 'no'} | {len(vals)} | {modes} | {hq} | {w2} |")
    plot_wgan(args)


def plot_wgan(args: argparse.Namespace) -> None:
    """Samples of seed 0 for every configuration, from each run's samples.png data."""
    from occamgan.api import load_run

    order = [("adam", False), ("acgd", False), ("adam", True), ("adam5", True), ("acgd", True)]
    cells = [(d, r, gp) for d in ("ring8", "grid25") for r, gp in order]
    fig, axes = plt.subplots(2, 5, figsize=(12.5, 5.4), dpi=80)
    for ax, (d, r, gp) in zip(axes.flat, cells):
        out = SWEEP / "wgan" / f"{d}-{r}-{'gp' if gp else 'nogp'}-s0"
        ax.set_xticks([])
        ax.set_yticks([])
        label = {"acgd": "ACGD", "adam": "Adam", "adam5": "Adam n_critic 5"}[r]
        ax.set_title(f"{d}: {label}, {'GP' if gp else 'no GP'}", fontsize=8)
        if not (out / "summary.json").is_file():
            ax.text(0.5, 0.5, "diverged" if (out / "failed.txt").is_file() else "missing", ha="center")
            continue
        run = load_run(out)
        x = run.sample(2000, use_ema=False)
        real = run.data.data[:2000]
        ax.scatter(real[:, 0], real[:, 1], s=1, c="tab:blue", alpha=0.3)
        ax.scatter(x[:, 0], x[:, 1], s=1, c="tab:orange", alpha=0.4)
        ax.set_xlim(-3, 3)
        ax.set_ylim(-3, 3)
    fig.tight_layout()
    save_small(fig, "competitive_wgan.png")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("experiment", choices=["bilinear", "two_modes", "wgan"])
    ap.add_argument("--steps", type=int, default=0, help="0: the experiment's default")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--latent", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--every", type=int, default=25, help="two_modes: steps between mode statistics")
    ap.add_argument("--cg-max-iter", type=int, default=100)
    ap.add_argument("--report", action="store_true", help="only tabulate/plot finished runs")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    {"bilinear": bilinear, "two_modes": two_modes, "wgan": wgan}[args.experiment](args)


if __name__ == "__main__":
    main()
