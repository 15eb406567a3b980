"""Cost of a competitive step (ACGD, GACGD) vs an alternating Adam step, and vs the public CGDs.

All contestants start from the same weights (one toy MLP pair built by occamgan: ring8, width
128, depth 2, batch 256 by default) and see the same batch and latent at every step (the global
seed is reset before each step, so ``Game.sample_latent`` and the reference draw the same z). The
steps of the contestants are interleaved, so background load hits them alike; figures are
medians over the timed steps (the first step is not timed). With one thread the CPU time of a
step is its work whatever the load: ratios use it, wall times are shown too.

- ``adam``: occamgan's ``alternating`` rule (1 critic + 1 generator Adam step): 2 backward passes.
- ``acgd``: occamgan's ``acgd`` on the WGAN loss without clipping or penalty (V = E D(x) - E D(G(z))),
  with its default cold start, and with ``train.cgd_warm_start`` (what the warm start buys).
- ``CGDs.ACGD``: the public package (pip CGDs==0.4.5) with the same lr, beta, eps, the same
  (squared) CG tolerance and the same order of solves (generator first, then alternating); it
  always warm-starts. Its parameters after the run are compared with occamgan's warm-started
  ACGD (same algorithm: they agree up to the solver tolerance, amplified by the dynamics).
- ``gacgd`` vs ``CGDs.GACGD``: general sum (non-saturating loss); CGDs runs unrestarted GMRES on
  the joint (x, y) system from a cold start, occamgan restarted GMRES on one player's reduced
  system, both from a cold start and to the same relative residual (CGDs's GMRES tolerance is on
  the residual norm, occamgan's config on its square: tol_occamgan = tol_CGDs^2).

A last check runs occamgan's warm-started ACGD and CGDs.ACGD side by side in float64 at a CG
tolerance of 1e-24 and reports their largest parameter difference (the same algorithm agrees to
rounding; in float32 at tol 1e-10 small solver differences grow with the GAN dynamics).

Backward passes ("gradient evaluations") are counted: occamgan reports them per step; for CGDs
the Hessian-vector helper is wrapped with a counter (plus its first-order gradient passes).
CGDs is not a dependency of occamgan: install it in a separate environment, e.g.

    python -m venv /work/venv-cgds --system-site-packages && /work/venv-cgds/bin/pip install CGDs==0.4.5
    /work/venv-cgds/bin/python benchmarks/bench_competitive.py          # ~5 min on 1 busy core
    python benchmarks/bench_competitive.py --quick                      # without CGDs: skipped

Without the package the CGDs rows are skipped with a message.
"""
from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from occamgan.build import build_game  # noqa: E402
from occamgan.config import build_config  # noqa: E402
from occamgan.data.base import build_data  # noqa: E402
from occamgan.game import Game  # noqa: E402
from occamgan.plugins import UPDATE_RULES  # noqa: E402
from occamgan.update_rules.mixed_hvp import flatten  # noqa: E402

try:
    import CGDs  # type: ignore
    import CGDs.acgd
    import CGDs.cgd_utils
    import CGDs.gmres_acgd
except ImportError:  # not a dependency: the comparison is optional
    CGDs = None


# ----------------------------------------------------------------------------------- set-up
def make_config(args: argparse.Namespace, objective: str, update: str, warm_start: bool = False):
    return build_config({
        "seed": 0,
        "data": {"name": "ring8"},
        "model": {"name": "mlp", "width": args.width, "depth": args.depth, "latent_dim": args.latent},
        "objective": {"name": objective, "clip": 1e9},  # WGAN loss without clipping (ICR paper)
        "train": {"update": update, "batch_size": args.batch, "lr_g": args.lr, "lr_d": args.lr,
                  "cg_tol": args.tol, "cg_atol": 1e-20, "cg_max_iter": 1000, "gmres_restart": args.restart,
                  "acgd_beta": 0.99, "acgd_eps": 1e-8, "cgd_warm_start": warm_start, "device": "cpu"},
    })


class Batches:
    """The same real batches for everyone; z comes from the global seed reset before each step."""

    def __init__(self, data: Tensor, batch: int, n: int):
        gen = torch.Generator().manual_seed(1)
        self.items = [data[torch.randint(len(data), (batch,), generator=gen)] for _ in range(n)]

    @staticmethod
    def seed(i: int) -> None:
        torch.manual_seed(10_000 + i)


class OccamganRule:
    def __init__(self, name: str, game: Game, cfg):
        self.name, self.game = name, game
        self.rule = UPDATE_RULES.get(cfg.train.update)(game, cfg.train)

    def step(self, batch: Tensor) -> dict[str, float]:
        stats = self.rule.step(self.game, lambda: batch)
        evals = stats.get("grad_evals", 2)  # alternating Adam: one backward per player
        return {"grad_evals": float(evals), "solver_iters": float(stats.get("solver_iters", 0))}

    def params(self) -> Tensor:
        return flatten(list(self.game.parameters()))


class HvpCounter:
    """Counts calls of CGDs's Hessian-vector helper (one backward pass each)."""

    calls = 0

    @classmethod
    def install(cls) -> None:
        original = CGDs.cgd_utils.Hvp_vec

        def counted(*a, **k):
            cls.calls += 1
            return original(*a, **k)

        for module in (CGDs.cgd_utils, CGDs.acgd, CGDs.gmres_acgd):
            module.Hvp_vec = counted


class CGDsACGD:
    """CGDs.ACGD on V = E D(x) - E D(G(z)): the critic maximises V, the generator minimises it."""

    name = "CGDs.ACGD"

    def __init__(self, game: Game, cfg):
        self.game = game
        t = cfg.train
        # solve_x=True: the minimising player (G) is solved first, as occamgan's alternation
        self.opt = CGDs.ACGD(max_params=game.discriminator_parameters(), min_params=game.generator_parameters(),
                             lr_max=t.lr_d, lr_min=t.lr_g, eps=t.acgd_eps, beta=t.acgd_beta,
                             tol=t.cg_tol, atol=t.cg_atol, solve_x=True)
        self.steps = 0

    def step(self, batch: Tensor) -> dict[str, float]:
        z = torch.randn(batch.shape[0], self.game.latent_dim)
        value = self.game.critic(batch).mean() - self.game.critic(self.game.generate(z)).mean()
        before = HvpCounter.calls
        self.opt.step(value)
        hvps = HvpCounter.calls - before
        warm = 2 if self.steps > 0 else 0  # products for A x0 once a previous solution exists
        self.steps += 1
        # 2 gradient passes; 2 right-hand-side products, 2 per CG iteration, 1 for the other step
        return {"grad_evals": 2.0 + hvps, "solver_iters": (hvps - 3 - warm) / 2}

    def params(self) -> Tensor:
        return flatten(list(self.game.parameters()))


class CGDsGACGD:
    """CGDs.GACGD: x = G minimises L_G, y = D minimises L_D (full joint system, GMRES)."""

    name = "CGDs.GACGD"

    def __init__(self, game: Game, cfg):
        self.game = game
        t = cfg.train
        self.opt = CGDs.GACGD(x_params=game.generator_parameters(), y_params=game.discriminator_parameters(),
                              lr_x=t.lr_g, lr_y=t.lr_d, eps=t.acgd_eps, beta=t.acgd_beta,
                              tol=t.cg_tol ** 0.5, atol=t.cg_atol ** 0.5, max_iter=1000)

    def step(self, batch: Tensor) -> dict[str, float]:
        z = torch.randn(batch.shape[0], self.game.latent_dim)
        loss_d, loss_g = self.game.losses(batch, z)
        before = HvpCounter.calls
        self.opt.step(loss_g, loss_d)
        hvps = HvpCounter.calls - before
        # 2 first-order backward passes + 2 create_graph gradient passes; 2 products per iteration
        return {"grad_evals": 4.0 + hvps, "solver_iters": hvps / 2}

    def params(self) -> Tensor:
        return flatten(list(self.game.parameters()))


# ----------------------------------------------------------------------------------- running
def run(contestants: list, batches: Batches, steps: int) -> dict[str, dict[str, list[float]]]:
    rec = {c.name: {"seconds": [], "cpu_seconds": [], "grad_evals": [], "solver_iters": []} for c in contestants}
    for i in range(steps):
        order = contestants[i % len(contestants):] + contestants[: i % len(contestants)]
        for c in order:
            Batches.seed(i)
            t0, c0 = time.perf_counter(), time.process_time()
            stats = c.step(batches.items[i])
            dt, dc = time.perf_counter() - t0, time.process_time() - c0
            if i > 0:  # the first step (allocations, CGDs's first-call set-up) is not timed
                rec[c.name]["seconds"].append(dt)
                rec[c.name]["cpu_seconds"].append(dc)
                rec[c.name]["grad_evals"].append(stats["grad_evals"])
                rec[c.name]["solver_iters"].append(stats["solver_iters"])
    return rec


def summarise(rec: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, float]]:
    return {name: {k: statistics.median(v) for k, v in r.items()} | {"mean_iters": statistics.mean(r["solver_iters"])}
            for name, r in rec.items()}


def build(args, objective: str, update: str, data) -> tuple[object, Game]:
    cfg = make_config(args, objective, update)
    torch.manual_seed(cfg.seed)
    return cfg, build_game(cfg, data, torch.device("cpu"))


def zero_sum_suite(args, data, batches) -> tuple[dict, float | None]:
    cfg, game = build(args, "wgan", "acgd", data)
    contestants: list = [
        OccamganRule("adam", copy.deepcopy(game), make_config(args, "wgan", "alternating")),
        OccamganRule("acgd", copy.deepcopy(game), cfg),
        OccamganRule("acgd (warm start)", copy.deepcopy(game), make_config(args, "wgan", "acgd", warm_start=True)),
    ]
    if CGDs is not None:
        contestants.append(CGDsACGD(copy.deepcopy(game), cfg))
    rec = summarise(run(contestants, batches, args.steps))
    gap = None
    if CGDs is not None:
        gap = (contestants[2].params() - contestants[-1].params()).abs().max().item()
    return rec, gap


def general_sum_suite(args, data, batches) -> dict:
    cfg, game = build(args, "ns", "gacgd", data)
    contestants: list = [OccamganRule("gacgd", copy.deepcopy(game), cfg)]
    if CGDs is not None:
        contestants.append(CGDsGACGD(copy.deepcopy(game), cfg))
    return summarise(run(contestants, batches, args.gsteps))


def agreement_check(args, steps: int = 60) -> list[tuple[int, float]]:
    """occamgan's warm-started ACGD vs CGDs.ACGD in float64 at CG tol 1e-24 (width 32, batch
    64): the max parameter difference after 1, 10, 30, 60 steps (same algorithm: ~1e-10)."""
    small = argparse.Namespace(**(vars(args) | {"width": 32, "batch": 64, "tol": 1e-24}))
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        cfg = make_config(small, "wgan", "acgd", warm_start=True)
        data = build_data(cfg)
        data.data = data.data.double()
        _, game = build(small, "wgan", "acgd", data)
        game = game.double()
        batches = Batches(data.data, small.batch, steps)
        ours, theirs = OccamganRule("acgd", copy.deepcopy(game), cfg), CGDsACGD(copy.deepcopy(game), cfg)
        gaps = []
        for i in range(steps):
            for c in (ours, theirs):
                Batches.seed(i)
                c.step(batches.items[i])
            if i + 1 in (1, 10, 30, 60):
                gaps.append((i + 1, (ours.params() - theirs.params()).abs().max().item()))
        return gaps
    finally:
        torch.set_default_dtype(old)


def warm_start_scan(args, steps: int = 30) -> None:
    """Mean solver iterations and backward passes per step with and without warm start, for CGD
    and ACGD at several learning rates (width 64; same batches and latents for both)."""
    print(f"## warm start vs cold start, {steps} steps, width 64\n")
    print("| rule | lr | mean iterations cold / warm | mean backward passes cold / warm |\n| --- | --- | --- | --- |")
    for update, lr in [("cgd", 0.05), ("cgd", 0.2), ("acgd", 1e-4), ("acgd", 1e-2)]:
        small = argparse.Namespace(**(vars(args) | {"width": 64, "lr": lr}))
        cfg = make_config(small, "wgan", update)
        data = build_data(cfg)
        _, game = build(small, "wgan", update, data)
        batches = Batches(data.data, small.batch, steps)
        means = {}
        for warm in (False, True):
            rule = OccamganRule(update, copy.deepcopy(game), make_config(small, "wgan", update, warm_start=warm))
            stats = []
            for i in range(steps):
                Batches.seed(i)
                stats.append(rule.step(batches.items[i]))
            means[warm] = [statistics.mean(s[k] for s in stats) for k in ("solver_iters", "grad_evals")]
        print(f"| {update} | {lr:g} | {means[False][0]:.2f} / {means[True][0]:.2f} | "
              f"{means[False][1]:.1f} / {means[True][1]:.1f} |")


def table(rec: dict, base: str, ref_pairs: dict[str, str]) -> str:
    """Ratios use CPU time (one thread: CPU time is the work, unlike wall time on a loaded machine)."""
    lines = ["| contestant | CPU ms / step | wall ms / step | x Adam (CPU) | backward passes / step | "
             "solver iters (median, mean) | CGDs / occamgan (CPU) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in rec.items():
        vs_adam = r["cpu_seconds"] / rec[base]["cpu_seconds"] if base in rec else float("nan")
        ratio = ""
        if name in ref_pairs and ref_pairs[name] in rec:
            ratio = f"{rec[ref_pairs[name]]['cpu_seconds'] / r['cpu_seconds']:.2f}"
        lines.append(f"| {name} | {r['cpu_seconds'] * 1e3:.1f} | {r['seconds'] * 1e3:.1f} | {vs_adam:.1f} | "
                     f"{r['grad_evals']:.0f} | {r['solver_iters']:.0f}, {r['mean_iters']:.1f} | {ratio} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="10 steps each, width 64")
    ap.add_argument("--steps", type=int, default=60, help="zero-sum steps per contestant")
    ap.add_argument("--gsteps", type=int, default=30, help="general-sum steps per contestant")
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--latent", type=int, default=2)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--tol", type=float, default=1e-10, help="CG tolerance on ||r||^2 / ||b||^2")
    ap.add_argument("--restart", type=int, default=10, help="occamgan's GMRES restart length")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--warm-scan", action="store_true", help="only compare warm and cold starts")
    args = ap.parse_args()
    if args.quick:
        args.steps, args.gsteps, args.width = 10, 8, 64
    torch.set_num_threads(args.threads)
    if args.warm_scan:
        warm_start_scan(args)
        return
    cfg = make_config(args, "wgan", "acgd")
    data = build_data(cfg)
    batches = Batches(data.data, args.batch, max(args.steps, args.gsteps))
    if CGDs is None:
        print("CGDs is not installed in this environment: skipping the comparison with the public package "
              "(pip install CGDs==0.4.5 into a separate venv and run the script with its python)")
    else:
        HvpCounter.install()
    n_params = sum(p.numel() for p in build(args, "wgan", "acgd", data)[1].parameters())
    print(f"# toy MLPs width {args.width} depth {args.depth} ({n_params} parameters in G + D), batch "
          f"{args.batch}, lr {args.lr}, CG tol {args.tol:g} on ||r||^2/||b||^2, {args.threads} thread(s), "
          f"torch {torch.__version__}, {platform.processor() or platform.machine()}")
    zero, gap = zero_sum_suite(args, data, batches)
    print(f"\n## zero sum (WGAN loss), {args.steps - 1} timed steps\n")
    print(table(zero, "adam", {"acgd": "CGDs.ACGD", "acgd (warm start)": "CGDs.ACGD"}))
    if gap is not None:
        print(f"\nmax |parameter difference| occamgan acgd (warm start) vs CGDs.ACGD after {args.steps} steps: {gap:.2e}")
    general = general_sum_suite(args, data, batches)
    general["adam"] = zero["adam"]
    print(f"\n## general sum (non-saturating loss), {args.gsteps - 1} timed steps\n")
    print(table(general, "adam", {"gacgd": "CGDs.GACGD"}))
    agreement = None
    if CGDs is not None:
        agreement = agreement_check(args)
        print("\n## agreement with CGDs.ACGD in float64 at CG tol 1e-24 (width 32, batch 64)\n")
        print("| steps | max abs parameter difference |\n| --- | --- |")
        for step, diff in agreement:
            print(f"| {step} | {diff:.1e} |")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "zero_sum": zero,
                                         "general_sum": general, "param_gap": gap, "agreement": agreement}, indent=2))


if __name__ == "__main__":
    main()
