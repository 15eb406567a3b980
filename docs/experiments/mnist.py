"""MNIST at CPU size: baseline vs the Occam strategies (docs/experiments/mnist.md).

Trains DCGAN-32 (MNIST resized 28 -> 32, bilinear) with WGAN-div and/or RGAN under five settings
(and, baseline only so far, the rest of the relativistic family: rsgan, ralsgan, rahinge, rpgan and
R3GAN's rpgan_r1r2, with the probes rpgan_no_norm and rpgan_r1r2_bn) and scores every run with
domain-feature FID/KID (the LeNet classifier of ``occamgan features train --data mnist``) and,
optionally, Inception FID, on generated samples of the EMA generator (MC-dropout runs are sampled
with dropout active, as the method prescribes).

    python docs/experiments/mnist.py run --objectives rgan --seeds 0 1 2 --jobs 2
    python docs/experiments/mnist.py report          # table + figure from the finished runs
    python docs/experiments/mnist.py run --objectives rsgan ralsgan rahinge rpgan rpgan_r1r2 --strategies baseline --jobs 1
    python docs/experiments/mnist.py report --objectives rgan wgan_div   # mnist_samples.png as committed

Runs go to sweeps/mnist/<objective>/<strategy>/s<seed>/ (git-ignored); a finished run (one with
scores.json) is skipped, so the command can be re-run after an interruption.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))
OUT = ROOT / "sweeps" / "mnist"
MNIST = os.environ.get("OCCAMGAN_DATA", str(ROOT.parent / "shared" / "data" / "mnist"))
SEEDS = [29835, 28347, 192377, 30498, 123817]  # the paper's first seeds

#: strategy -> config overrides on top of the base setup (docs/methods.md section 3)
STRATEGIES: dict[str, dict] = {
    "baseline": {},
    "relaxation": {"regularizers": {"sigma": 0.1}},
    "asam": {"train": {"sam_rho": 0.5, "sam_adaptive": True, "sam_players": "both"}},
    "mc_dropout": {"model": {"dropout": 0.2}, "train": {"n_mcd": 2}},
    "grad_reg": {"regularizers": {"grad_reg": 0.01}},
}


#: objective -> (n_critic, lr, critic normalisation). WGAN-div runs at the paper's lr with a critic
#: without BatchNorm: with a normalised critic, D is invariant to the input's contrast, so its
#: input gradient grows like 1/contrast at the near-grey early fakes and the p = 6 penalty flattens
#: the critic before the generator learns anything (mnist.md, "WGAN-div").
#: The rest of the relativistic family (issue 13) runs at RGAN's setup; rpgan_r1r2 is R3GAN's RpGAN
#: + R1 + R2 with a critic without BatchNorm, as configs/images/mnist32_rpgan_cpu.yaml, and
#: rpgan_no_norm / rpgan_r1r2_bn take one of its two changes at a time (mnist.md, issue 13 section).
OBJECTIVE_SETUP: dict[str, tuple[int, float, str]] = {
    "rgan": (1, 2e-4, "batch"),
    "wgan_div": (5, 1e-3, "none"),
    "rsgan": (1, 2e-4, "batch"),
    "ralsgan": (1, 2e-4, "batch"),
    "rahinge": (1, 2e-4, "batch"),
    "rpgan": (1, 2e-4, "batch"),
    "rpgan_r1r2": (1, 2e-4, "none"),
    "rpgan_no_norm": (1, 2e-4, "none"),
    "rpgan_r1r2_bn": (1, 2e-4, "batch"),
}

#: objective -> config overrides on top of its setup, for the names that are not a registered objective
OBJECTIVE_EXTRA: dict[str, dict] = {
    "rpgan_r1r2": {"objective": {"name": "rpgan"}, "regularizers": {"r1": 0.05, "r2": 0.05}},
    "rpgan_no_norm": {"objective": {"name": "rpgan"}},
    "rpgan_r1r2_bn": {"objective": {"name": "rpgan"}, "regularizers": {"r1": 0.05, "r2": 0.05}},
}


def base_config(objective: str, steps: int, width: int, seed: int) -> dict:
    n_critic, lr, d_norm = OBJECTIVE_SETUP[objective]
    return merge({
        "seed": seed,
        "data": {"name": "mnist", "root": MNIST, "image_size": 32, "channels": 1},
        "model": {"name": "dcgan", "latent_dim": 100, "ngf": width, "ndf": width, "d_norm": d_norm},
        "objective": {"name": objective},
        "train": {"steps": steps, "lr_decay": "none", "batch_size": 64, "n_critic": n_critic, "lr_g": lr, "lr_d": lr,
                  "betas": [0.5, 0.999], "warmup_steps": max(1, steps // 25), "ema_start": steps // 5,
                  "log_every": 50, "checkpoint_every": max(1, steps // 4), "device": "cpu"},
        "eval": {"n_samples": 64},
    }, OBJECTIVE_EXTRA.get(objective, {}))


def merge(tree: dict, extra: dict) -> dict:
    out = json.loads(json.dumps(tree))
    for section, values in extra.items():
        out.setdefault(section, {}).update(values)
    return out


def run_one(objective: str, strategy: str, seed: int, args: argparse.Namespace) -> None:
    """Train (or resume) one run, then score it; writes scores.json last."""
    import torch

    from occamgan import api

    torch.set_num_threads(1)
    run_dir = OUT / objective / strategy / f"s{seed}"
    cfg = merge(base_config(objective, args.steps, args.width, seed), STRATEGIES[strategy])
    resume = (run_dir / "checkpoints" / "last.pt").is_file()
    api.train(cfg, out=run_dir, resume=resume, overwrite=not resume, progress=False)
    score(run_dir, objective, strategy, seed, args)


def score(run_dir: Path, objective: str, strategy: str, seed: int, args: argparse.Namespace) -> dict:
    """LeNet FID/KID (and optionally Inception FID) of the RAW generator on args.n_eval samples
    against as many MNIST test images. Raw, not EMA: with the paper's EMA (decay 0.999, i.e. a
    ~1,000-step memory) started at 20% of a 600-step run, the average is still dominated by the
    early generator (grey blobs), which says nothing about the strategies. MC-dropout runs are
    sampled with dropout active (the method) and also, as ``*_no_mc``, with it off, to separate
    what training with dropout does from what sampling with it does. Scores of an earlier call
    that this one does not recompute (e.g. Inception FID) are kept."""
    from occamgan.evaluation import evaluate_run

    mc = strategy == "mc_dropout"
    path = run_dir / "scores.json"
    previous = json.loads(path.read_text()) if path.is_file() else {}
    summary = json.loads((run_dir / "summary.json").read_text())
    scores = previous if previous.get("generator") == "raw" else {}
    scores.update({"objective": objective, "strategy": strategy, "seed": seed, "generator": "raw",
                   "train_seconds": summary.get("seconds"), "mc_dropout_sampling": mc})
    common = dict(n=args.n_eval, n_ref=args.n_eval, reference_split="test", use_ema=False)
    results = evaluate_run(run_dir, ["fid_lenet", "kid_lenet"], mc_dropout=mc, record=True, **common)
    if args.inception:
        results.update(evaluate_run(run_dir, ["fid"], mc_dropout=mc, record=True, **common))
    if mc:
        plain = evaluate_run(run_dir, ["fid_lenet", "kid_lenet"], mc_dropout=False, record=False, **common)
        results.update({f"{k}_no_mc": v for k, v in plain.items() if not k.startswith("protocol")})
    scores.update({k: v for k, v in results.items() if not k.startswith("protocol")})
    scores.setdefault("protocol", {}).update({k: v for k, v in results.items() if k.startswith("protocol")})
    path.write_text(json.dumps(scores, indent=2))
    print(json.dumps({k: v for k, v in scores.items() if k != "protocol"}), flush=True)
    return scores


def rescore(args: argparse.Namespace) -> None:
    """Score again every selected finished run whose scores are not of the raw generator, lack
    Inception FID when --inception is given, or (MC dropout) lack the scores without MC sampling."""
    import torch

    torch.set_num_threads(1)
    for path in sorted(OUT.glob("*/*/s*/scores.json")):
        old = json.loads(path.read_text())
        complete = (not args.inception or "fid" in old) and (old["strategy"] != "mc_dropout" or "fid_lenet_no_mc" in old)
        if old.get("generator") == "raw" and complete:
            continue
        if (old["objective"] not in args.objectives or old["strategy"] not in args.strategies
                or old["seed"] not in [SEEDS[i] for i in args.seeds]):
            continue
        run_dir = path.parent
        score(run_dir, old["objective"], old["strategy"], old["seed"], args)


def jobs(args: argparse.Namespace) -> list[tuple[str, str, int]]:
    return [(objective, strategy, SEEDS[seed]) for seed in args.seeds for objective in args.objectives
            for strategy in args.strategies]


def claim_path(objective: str, strategy: str, seed: int) -> Path:
    # outside the run directory, which api.train(overwrite=True) replaces
    return OUT / "claims" / f"{objective}-{strategy}-s{seed}"


def claim(objective: str, strategy: str, seed: int) -> bool:
    """True if the run is neither finished (scores.json) nor taken by another driver (a claim
    file; delete stale ones under sweeps/mnist/claims/ after a crash)."""
    if (OUT / objective / strategy / f"s{seed}" / "scores.json").is_file():
        return False
    path = claim_path(objective, strategy, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.open("x").close()
    except FileExistsError:
        return False
    return True


def run_all(args: argparse.Namespace) -> None:
    """Run the missing jobs, ``--jobs`` processes at a time (one thread each)."""
    todo, running = jobs(args), []
    while todo or running:
        while todo and len(running) < args.jobs:
            objective, strategy, seed = todo.pop(0)
            if not claim(objective, strategy, seed):
                continue
            log = OUT / "logs" / f"{objective}-{strategy}-s{seed}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            cmd = [sys.executable, __file__, "one", objective, strategy, str(seed), "--steps", str(args.steps),
                   "--width", str(args.width), "--n-eval", str(args.n_eval)] + (["--inception"] if args.inception else [])
            env = dict(os.environ, OMP_NUM_THREADS="1")
            lock = claim_path(objective, strategy, seed)
            running.append((subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env), log, lock))
        time.sleep(5)
        for item in list(running):
            proc, log, lock = item
            if proc.poll() is not None:
                running.remove(item)
                lock.unlink(missing_ok=True)
                print(f"{'done' if proc.returncode == 0 else 'FAILED'}: {log.name}", flush=True)


# ------------------------------------------------------------------------- critic gradients at init
CRITICS = [  # (label, config file or None for this driver's setup, critic normalisation)
    ("DCGAN-32, width 16", None, "batch"), ("DCGAN-32, width 16", None, "layer"),
    ("DCGAN-32, width 16", None, "none"),
    ("DCGAN-64, width 64", "configs/images/mnist64_wgan_div.yaml", "batch"),
    ("DCGAN-64, width 64", "configs/images/mnist64_wgan_div.yaml", "none"),
]


def critic_gradients(args: argparse.Namespace) -> None:
    """The table of mnist.md, "WGAN-div and the critic's BatchNorm": contrast (per-image sd),
    mean ||grad_x D|| and E||grad_x D||^6 on 64 real and 64 generated images, at initialisation."""
    import torch

    from occamgan.build import build_experiment
    from occamgan.config import build_config, load_config

    print("| critic | d_norm | mean per-image sd, real / fake | mean ||grad D||, real / fake | E||grad D||^6, real / fake |")
    print("|---|---|---|---|---|")
    for label, path, d_norm in CRITICS:
        overrides = [f"model.d_norm={d_norm}", f"data.root={MNIST}", "train.device=cpu", f"seed={SEEDS[0]}"]
        cfg = (load_config(ROOT / path, overrides) if path
               else build_config(base_config("wgan_div", args.steps, args.width, SEEDS[0]), overrides))
        exp = build_experiment(cfg)
        real = exp.data.batch_sampler(64, seed=0).next()
        with torch.no_grad():
            fake = exp.game.generator(torch.randn(64, cfg.model.latent_dim, generator=torch.Generator().manual_seed(0)))
        cells = []
        for x in (real, fake):
            x = x.clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(exp.game.discriminator(x).sum(), x)
            norm = grad.flatten(1).norm(dim=1)
            cells.append((x.detach().flatten(1).std(1).mean().item(), norm.mean().item(), norm.pow(6).mean().item()))
        (sr, gr, pr), (sf, gf, pf) = cells
        print(f"| {label} | {d_norm} | {sr:.2f} / {sf:.2g} | {gr:.2g} / {gf:.2g} | {pr:.2g} / {pf:.2g} |")


# ------------------------------------------------------------------------------------------ report
def load_scores() -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(OUT.glob("*/*/s*/scores.json"))]


def mean_sd(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.3g}"
    return f"{statistics.mean(values):.3g} ± {statistics.stdev(values):.2g}"


def report(args: argparse.Namespace) -> None:
    scores = [s for s in load_scores() if s["objective"] in args.objectives]
    metrics = ["fid_lenet", "kid_lenet", "fid", "fid_lenet_no_mc", "kid_lenet_no_mc"]
    rows = ["| objective | strategy | seeds | " + " | ".join(metrics) + " | fid_lenet per seed | wall s / run (runs timed) |",
            "|---" * (len(metrics) + 5) + "|"]
    for objective in args.objectives:
        for strategy in STRATEGIES:
            group = sorted((s for s in scores if s["objective"] == objective and s["strategy"] == strategy),
                           key=lambda s: SEEDS.index(s["seed"]) if s["seed"] in SEEDS else len(SEEDS))
            if not group:
                continue
            cells = [mean_sd([s[m] for s in group if m in s]) for m in metrics]
            per_seed = ", ".join(f"{s['seed']}: {s['fid_lenet']:.1f}" for s in group)
            timed = [s["train_seconds"] for s in group if (s.get("train_seconds") or 0) > 1]  # not resumed runs
            secs = f"{statistics.mean(timed):.0f} ({len(timed)})" if timed else "-"
            rows.append(f"| {objective} | {strategy} | {len(group)} | " + " | ".join(cells) + f" | {per_seed} | {secs} |")
    table = "\n".join(rows)
    print(table)
    (OUT / "table.md").write_text(table + "\n")
    figure(scores, Path(args.figure))


def figure(scores: list[dict], path: Path) -> None:
    """One sample grid per (objective, strategy): the first seed's raw-generator samples (MC-dropout
    sampling for mc_dropout), 36 images each, fixed latents."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from occamgan import api
    from occamgan.image_grid import grid_array

    cells = sorted({(s["objective"], s["strategy"]) for s in scores},
                   key=lambda c: (c[0], list(STRATEGIES).index(c[1])))
    objectives = [o for o in OBJECTIVE_SETUP if o in {c[0] for c in cells}]
    ncol = len(STRATEGIES)
    fig, axes = plt.subplots(len(objectives), ncol, figsize=(2.2 * ncol, 2.7 * len(objectives)), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for objective, strategy in cells:
        seed = min(s["seed"] for s in scores if s["objective"] == objective and s["strategy"] == strategy)
        run = api.load_run(OUT / objective / strategy / f"s{seed}")
        with torch.no_grad():
            images = run.sample(36, seed=7, use_ema=False, mc_dropout=strategy == "mc_dropout")
        ax = axes[objectives.index(objective), list(STRATEGIES).index(strategy)]
        ax.imshow(grid_array(images, nrow=6)[..., 0], cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"{objective}\n{strategy}", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=72)
    print(f"figure: {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("run", "one", "rescore"):
        p = sub.add_parser(name)
        if name == "one":
            p.add_argument("objective")
            p.add_argument("strategy", choices=list(STRATEGIES))
            p.add_argument("seed", type=int)
        else:  # run and rescore select runs alike
            default_objectives = ["rgan"] if name == "run" else list(OBJECTIVE_SETUP)
            p.add_argument("--objectives", nargs="+", default=default_objectives, choices=list(OBJECTIVE_SETUP))
            p.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=list(STRATEGIES))
            p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="indices into the paper's seeds")
        if name == "run":
            p.add_argument("--jobs", type=int, default=2)
        p.add_argument("--steps", type=int, default=1500)
        p.add_argument("--width", type=int, default=16, help="ngf = ndf")
        p.add_argument("--n-eval", type=int, default=2000)
        p.add_argument("--inception", action="store_true", help="also Inception FID (~0.2 s per image on 2 cores)")
    p = sub.add_parser("critic-gradients", help="the critic's input gradients at initialisation (mnist.md)")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--width", type=int, default=16, help="ngf = ndf")
    p = sub.add_parser("report")
    p.add_argument("--objectives", nargs="+", default=list(OBJECTIVE_SETUP), choices=list(OBJECTIVE_SETUP))
    p.add_argument("--figure", default=str(ROOT / "docs" / "experiments" / "mnist_samples.png"))
    args = ap.parse_args()
    if args.cmd == "one":
        run_one(args.objective, args.strategy, args.seed, args)
    elif args.cmd == "run":
        run_all(args)
    elif args.cmd == "rescore":
        rescore(args)
    elif args.cmd == "critic-gradients":
        critic_gradients(args)
    else:
        report(args)


if __name__ == "__main__":
    main()
