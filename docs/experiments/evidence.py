"""The evidence of trained generators (issue 15, item 8; docs/experiments/evidence.md).

Three experiments, one subcommand each to run it and ``report`` for every table:

    python docs/experiments/evidence.py ppca       # a: linear MMD generators on pPCA data, P = 1..6, 10 draws
    python docs/experiments/evidence.py gaussian   # b: the paper's 2-D Gaussian sweep with the evidence metric
    python docs/experiments/evidence.py mnist      # c: DCGAN-32 runs on MNIST: AIS + BDMC against LeNet FID
    python docs/experiments/evidence.py report     # the tables of evidence.md and evidence_*.png

Everything runs with one torch thread (the machine is shared) and goes to sweeps/evidence/
(git-ignored). Finished pieces are skipped on a rerun (a run with summary.json, a score file),
so each command can be resumed after an interruption.

Evidence settings. AIS with HMC from ``occamgan.model_evidence`` (docs/methods.md section 9), with the
estimator author's recommendation for small latents (P <= 5): the geometric schedule and target
acceptance 0.9 (a pilot on the pPCA data, P = 3, T = 200, K = 8: mean log-weight variance 3.0
against 15 for sigmoid / 0.65, and 0.2 instead of 0.5 nats below the exact value). MNIST (P = 100)
uses the library default, sigmoid / 0.65 (Wu et al. 2017). sigma is fitted per model by maximum
marginal likelihood on the validation split (``fit_run_sigma``), then the evidence is measured on
the test split at that sigma.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))
HERE = Path(__file__).resolve().parent
OUT = ROOT / "sweeps" / "evidence"
MNIST_ROOT = os.environ.get("OCCAMGAN_DATA", str(ROOT.parent / "shared" / "data" / "mnist"))
SEED = 29835  # the paper's first seed

#: small-latent AIS settings (the estimator author's note: much lower variance for P <= 5)
SMALL_AIS = {"schedule": "geometric", "target_acceptance": 0.9}


def threads() -> None:
    import torch

    torch.set_num_threads(1)


def write_json(path: Path, value: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value, indent=2))
    tmp.replace(path)


def mean_sd(values: list[float], digits: int = 3) -> str:
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}g}"
    return f"{statistics.fmean(values):.{digits}g} ± {statistics.stdev(values):.2g}"


def allow_vector_samples_plot() -> None:
    """Runs on data of more than two dimensions end with a samples figure that
    ``occamgan.plots.save_samples_figure`` does not draw (it knows 2-D points and images); here
    such runs get a scatter of the first two coordinates instead (evidence.md says so)."""
    import occamgan.plots as plots

    original = plots.save_samples_figure
    if getattr(original, "_vector_fallback", False):
        return

    def save(data, fake, path, title=""):
        if data.kind != "image" and data.sample_shape != (2,):
            return plots.scatter_real_fake(data.data[:, :2], fake[:, :2], path, f"{title} (coordinates 1, 2)")
        return original(data, fake, path, title)

    save._vector_fallback = True
    plots.save_samples_figure = save


# ================================================================== a. pPCA, linear generators
PPCA = OUT / "ppca"


def ppca_config(draw: int, latent: int, args: argparse.Namespace) -> dict:
    """A linear generator (model.depth 0) trained by the unbiased MMD on one pPCA draw."""
    return {
        "seed": SEED,
        "data": {"name": "ppca", "n_samples": args.n_train, "seed": draw, "ppca_dim": 10, "ppca_rank": 3,
                 "ppca_noise": 0.1},
        "model": {"name": "mlp", "latent_dim": latent, "depth": 0},
        # the U-statistic: the V-statistic's 1/m bias shrinks the generated variance (gaussian.md)
        "objective": {"name": "mmd", "mmd_unbiased": True},
        "train": {"steps": args.steps, "batch_size": 100, "lr_g": 0.01, "betas": [0.5, 0.999], "lr_decay": "cosine",
                  "warmup_steps": 20, "log_every": 100, "checkpoint_every": args.steps, "device": "cpu",
                  "report": False},
        # raw generator: the EMA of a linear map drifting along z -> Rz shrinks it (gaussian.md)
        "eval": {"n_samples": 1000, "use_ema": False, "w2_samples": 200},
        # likelihood relaxation in training (fakes G(z) + sigma eps); 0 = the plain GAN (the main table)
        "regularizers": {"sigma": args.train_sigma},
    }


def ppca_dir(train_sigma: float) -> Path:
    return PPCA if train_sigma == 0 else OUT / f"ppca_train_sigma{train_sigma:g}"


def linear_map(run):
    import torch

    lin = [m for m in run.generator_for(False).modules() if isinstance(m, torch.nn.Linear)]
    assert len(lin) == 1, "a depth-0 generator is one linear map"
    return lin[0].weight.detach().double(), lin[0].bias.detach().double()


def gaussian_log_density(x, mean, cov):
    import torch

    return torch.distributions.MultivariateNormal(mean, covariance_matrix=cov).log_prob(x.double())


def ml_ppca(x, q: int):
    """Tipping & Bishop (1999) maximum-likelihood pPCA with q components on x (n, D): the mean,
    sigma^2 = mean of the D - q discarded eigenvalues of the sample covariance (1/n), and
    W W^T = U_q (Lambda_q - sigma^2 I) U_q^T; returns (mean, covariance W W^T + sigma^2 I, sigma^2)."""
    import torch

    x = x.double()
    mean = x.mean(0)
    s = (x - mean).T @ (x - mean) / len(x)
    lam, u = torch.linalg.eigh(s)
    lam, u = lam.flip(0), u.flip(1)
    sigma2 = lam[q:].mean()
    wwt = u[:, :q] @ torch.diag(lam[:q] - sigma2) @ u[:, :q].T
    return mean, wwt + sigma2 * torch.eye(x.shape[1], dtype=torch.float64), float(sigma2)


def exact_sigma(w, b, x_val) -> float:
    """The sigma maximising the exact mean log N(x | b, W W^T + sigma^2 I) on x_val."""
    import torch
    from scipy.optimize import minimize_scalar

    eye = torch.eye(w.shape[0], dtype=torch.float64)

    def negative(log_sigma: float) -> float:
        return -float(gaussian_log_density(x_val, b, w @ w.T + math.exp(2 * log_sigma) * eye).mean())

    res = minimize_scalar(negative, bounds=(math.log(1e-3), math.log(10.0)), method="bounded", options={"xatol": 1e-4})
    return math.exp(res.x)


def ppca_score(run_dir: Path, args: argparse.Namespace) -> dict:
    import torch

    from occamgan.model_evidence import evidence, fit_run_sigma, held_out_data
    from occamgan.runs import load_run

    run = load_run(run_dir)
    cfg = run.config
    latent = cfg.model.latent_dim
    w, b = linear_map(run)
    x_val = held_out_data(cfg, "validation", args.n_val)
    x_test = held_out_data(cfg, "test", args.n_test)
    ais = dict(chains=args.chains, leapfrog=5, **SMALL_AIS)
    t0 = time.process_time()
    fit = fit_run_sigma(run, x_val, use_ema=False, steps=args.fit_steps, seed=0, **ais)
    t1 = time.process_time()
    res = evidence(run, x_test, sigma=fit.sigma, use_ema=False, steps=args.ais_steps, seed=1, **ais)
    t2 = time.process_time()
    eye = torch.eye(w.shape[0], dtype=torch.float64)
    cov_gan = w @ w.T + fit.sigma ** 2 * eye
    exact_at_fit = gaussian_log_density(x_test, b, cov_gan)
    s_exact = exact_sigma(w, b, x_val)
    exact_at_exact = gaussian_log_density(x_test, b, w @ w.T + s_exact ** 2 * eye)
    train = run.data.data
    ml_mean, ml_cov, ml_sigma2 = ml_ppca(train, latent)
    ml_test = gaussian_log_density(x_test, ml_mean, ml_cov)
    true_cov = run.data.info["covariance"]

    def rel(a, ref):
        return float((a - ref).norm() / ref.norm())

    return {
        "draw": cfg.data.seed, "P": latent, "n_val": len(x_val), "n_test": len(x_test),
        "sigma_fit": fit.sigma, "sigma_curve": fit.curve, "sigma_exact": s_exact, "sigma_ml_ppca": math.sqrt(ml_sigma2),
        "ais": res.mean, "ais_stderr": res.stderr, "ais_points": res.log_px.tolist(),
        "exact_at_fit": float(exact_at_fit.mean()), "exact_at_fit_points": exact_at_fit.tolist(),
        "exact_at_exact": float(exact_at_exact.mean()), "exact_at_exact_points": exact_at_exact.tolist(),
        "ml_ppca_test": float(ml_test.mean()), "ml_ppca_points": ml_test.tolist(),
        "relfro_gan_vs_ml": rel(cov_gan, ml_cov), "relfro_gan_vs_true": rel(cov_gan, true_cov),
        "relfro_ml_vs_true": rel(ml_cov, true_cov),
        "relfro_wwt_vs_ml_signal": rel(w @ w.T, ml_cov - ml_sigma2 * eye),
        "mean_error": float((b - ml_mean).norm()),
        "gen_eigenvalues": torch.linalg.eigvalsh(w @ w.T).flip(0)[:latent].tolist(),
        "diagnostics": res.diagnostics, "protocol": res.protocol,
        "cpu_s": {"fit": t1 - t0, "ais": t2 - t1},
    }


def ppca(args: argparse.Namespace) -> None:
    threads()
    allow_vector_samples_plot()
    from occamgan import api

    for draw in args.draws:
        for latent in args.latents:
            run_dir = ppca_dir(args.train_sigma) / f"d{draw}" / f"P{latent}"
            score_path = run_dir.parent / f"P{latent}.score.json"
            if score_path.is_file():
                continue
            start = time.process_time()
            if not (run_dir / "summary.json").is_file():
                api.train(ppca_config(draw, latent, args), out=run_dir, overwrite=True, progress=False)
            trained = time.process_time()
            score = ppca_score(run_dir, args)
            score["cpu_s"]["train"] = trained - start
            write_json(score_path, score)
            print(f"draw {draw} P {latent}: sigma {score['sigma_fit']:.4f} AIS {score['ais']:.4f} "
                  f"exact {score['exact_at_fit']:.4f} (exact sigma {score['sigma_exact']:.4f}: "
                  f"{score['exact_at_exact']:.4f}) ML-pPCA {score['ml_ppca_test']:.4f} "
                  f"relF {score['relfro_gan_vs_ml']:.3f}  cpu {sum(score['cpu_s'].values()):.1f}s", flush=True)


def paired_se(a: list[float], b: list[float]) -> float:
    d = [x - y for x, y in zip(a, b)]
    return statistics.stdev(d) / math.sqrt(len(d))


def ppca_report(folder: Path = PPCA) -> str:
    scores = [json.loads(p.read_text()) for p in sorted(folder.glob("d*/P*.score.json"))]
    if not scores:
        return "(no pPCA scores yet)\n"
    draws = sorted({s["draw"] for s in scores})
    latents = sorted({s["P"] for s in scores})
    by = {(s["draw"], s["P"]): s for s in scores}
    out = []
    # per-P summary
    cols = ["sigma_fit", "sigma_exact", "ais", "exact_at_fit", "exact_at_exact", "ml_ppca_test", "relfro_gan_vs_ml",
            "relfro_gan_vs_true", "relfro_ml_vs_true"]
    out.append("| P | " + " | ".join(cols) + " |")
    out.append("|---|" + "---|" * len(cols))
    for p in latents:
        rows = [by[(d, p)] for d in draws if (d, p) in by]
        out.append(f"| {p} | " + " | ".join(mean_sd([r[c] for r in rows], 4) for c in cols) + " |")
    out.append("")
    # selection per draw
    keys = [("ais", "ais_points"), ("exact_at_fit", "exact_at_fit_points"), ("exact_at_exact", "exact_at_exact_points"),
            ("ml_ppca_test", "ml_ppca_points")]
    out.append("| draw | " + " | ".join(f"argmax {k} (margin over runner-up ± paired se)" for k, _ in keys) + " |")
    out.append("|---|" + "---|" * len(keys))
    picks = {k: [] for k, _ in keys}
    for d in draws:
        cells = []
        for k, pts in keys:
            avail = [p for p in latents if (d, p) in by]
            ranked = sorted(avail, key=lambda p: -by[(d, p)][k])
            best, second = ranked[0], ranked[1]
            margin = by[(d, best)][k] - by[(d, second)][k]
            se = paired_se(by[(d, best)][pts], by[(d, second)][pts])
            picks[k].append(best)
            cells.append(f"P = {best} (+{margin:.3f} ± {se:.3f} over P = {second})")
        out.append(f"| {d} | " + " | ".join(cells) + " |")
    out.append("")
    for k, _ in keys:
        counts = {p: picks[k].count(p) for p in latents}
        out.append(f"- {k}: picks " + ", ".join(f"P = {p}: {c}" for p, c in counts.items() if c) +
                   f" (P = 3 in {counts.get(3, 0)} of {len(draws)} draws)")
    cpu = sum(sum(s["cpu_s"].values()) for s in scores)
    out.append(f"- CPU time of the {len(scores)} runs (training + sigma fit + AIS): {cpu / 60:.1f} min")
    return "\n".join(out) + "\n"


# ============================================================ b. the 2-D Gaussian with evidence
GAUSS = OUT / "gaussian"


def gaussian(args: argparse.Namespace) -> None:
    """The paper's sweep (configs/gaussian.yaml, 2 depths x 4 latent dims x 5 seeds) with the
    evidence metric (sigma fitted on the validation draw), then exact/BDMC checks per run."""
    settings = [f"eval.evidence_n={args.n}", f"eval.evidence_chains={args.chains}",
                f"eval.evidence_steps={args.ais_steps}",
                "eval.evidence_leapfrog=5", f"eval.evidence_schedule={SMALL_AIS['schedule']}",
                f"eval.evidence_target_acceptance={SMALL_AIS['target_acceptance']}", "eval.metrics=[evidence]"]
    cmd = ["occamgan", "sweep", "--config", str(ROOT / "configs" / "gaussian.yaml"), "--grid", "model.depth=0,1",
           "--grid", "model.latent_dim=1,2,3,5", "--seeds", "5", "--jobs", "1", "--out", str(GAUSS), "--no-plots"]
    for s in settings:
        cmd += ["--set", s]
    print(" ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    subprocess.run(["occamgan", "select", str(GAUSS), "--no-plots"], check=True,
                   env=dict(os.environ, OMP_NUM_THREADS="1"))


def gaussian_checks(args: argparse.Namespace) -> None:
    """Per run: the exact evidence of the linear (depth-0) generators at the fitted sigma, and a
    BDMC gap at the fitted sigma for every run (the AIS error on the model's own data)."""
    threads()
    import torch

    from occamgan.model_evidence import bdmc, held_out_data
    from occamgan.runs import load_run

    for summary in sorted((GAUSS / "runs").glob("*/summary.json")):
        run_dir = summary.parent
        path = run_dir.parent.parent / "checks" / f"{run_dir.name}.json"
        if path.is_file():
            continue
        run = load_run(run_dir)
        values = json.loads(summary.read_text())
        metrics = values.get("metrics", values)
        sigma = float(metrics["evidence_sigma"])
        out = {"run": run_dir.name, "sigma": sigma}
        t = time.process_time()
        bounds = bdmc(run, args.bdmc_n, sigma=sigma, use_ema=False, chains=args.chains, steps=args.ais_steps,
                      leapfrog=5, seed=3, **SMALL_AIS)
        out.update(bdmc_lower=bounds.lower_mean, bdmc_upper=bounds.upper_mean, bdmc_gap=bounds.gap_mean)
        if run.config.model.depth == 0:
            w, b = linear_map(run)
            x = held_out_data(run.config, "test", args.n)
            cov = w @ w.T + sigma ** 2 * torch.eye(2, dtype=torch.float64)
            out["exact_at_fit"] = float(gaussian_log_density(x, b, cov).mean())
            out["exact_sigma"] = exact_sigma(w, b, held_out_data(run.config, "validation", args.n))
            cov = w @ w.T + out["exact_sigma"] ** 2 * torch.eye(2, dtype=torch.float64)
            out["exact_at_exact"] = float(gaussian_log_density(x, b, cov).mean())
        out["cpu_s"] = time.process_time() - t
        write_json(path, out)
        print(json.dumps(out), flush=True)


def gaussian_large_test(args: argparse.Namespace) -> None:
    """The toy held-out split of the gaussian set is its fixed size, 200 points, too few to
    separate models whose evidence differs by ~0.01 nats. Its distribution is known, N(0, I_2), so
    here every run is also scored on one larger fresh draw (``--n-large`` points, seed 7919) by AIS
    (``--large-chains`` chains, ``--large-steps`` steps, the small-latent settings) at the sigma the
    sweep's evidence metric fitted, keeping the per-point values for paired comparisons. (Prior
    importance sampling with 1,024 samples was tried first: its effective sample size fell to 1 on
    tail points and it came out 0.01-0.04 nats below the exact value of the linear runs.)"""
    threads()
    import torch

    from occamgan.model_evidence import evidence
    from occamgan.runs import load_run

    x = torch.randn(args.n_large, 2, generator=torch.Generator().manual_seed(7919))
    for summary in sorted((GAUSS / "runs").glob("*/summary.json")):
        run_dir = summary.parent
        path = GAUSS / "checks_large" / f"{run_dir.name}.json"
        if path.is_file():
            continue
        t = time.process_time()
        run = load_run(run_dir)
        sigma = float(json.loads(summary.read_text())["metrics"]["evidence_sigma"])
        res = evidence(run, x, sigma=sigma, chains=args.large_chains, steps=args.large_steps, leapfrog=5,
                       use_ema=False, seed=5, **SMALL_AIS)
        out = {"run": run_dir.name, "sigma": sigma, "ais": res.mean, "ais_stderr": res.stderr,
               "points": res.log_px.tolist(), "diagnostics": res.diagnostics, "protocol": res.protocol}
        if run.config.model.depth == 0:
            w, b = linear_map(run)
            cov = w @ w.T + sigma ** 2 * torch.eye(2, dtype=torch.float64)
            out["exact"] = float(gaussian_log_density(x, b, cov).mean())
        out["cpu_s"] = time.process_time() - t
        write_json(path, out)
        print(f"{run_dir.name}: AIS {res.mean:.4f} ± {res.stderr:.4f} exact {out.get('exact', float('nan')):.4f} "
              f"cpu {out['cpu_s']:.1f}s", flush=True)


def read_csv(path: Path) -> list[dict]:
    import csv

    with path.open() as f:
        return list(csv.DictReader(f))


def gaussian_report() -> str:
    if not (GAUSS / "results.csv").is_file():
        return "(no Gaussian sweep yet)\n"
    rows = [r for r in read_csv(GAUSS / "results.csv") if r["status"] == "done"]
    checks = {p.stem: json.loads(p.read_text()) for p in (GAUSS / "checks").glob("*.json")}
    f = lambda r, k: float(r[k]) if r.get(k) not in (None, "") else math.nan  # noqa: E731
    out = ["| depth | P | evidence (nats/point) | sigma fitted | exact at that sigma (depth 0) | BDMC gap | "
           "chi2_score | top eigenvalue | per-seed evidence |", "|---|---|---|---|---|---|---|---|---|"]
    depths = sorted({int(r["model.depth"]) for r in rows})
    latents = sorted({int(r["model.latent_dim"]) for r in rows})
    for d in depths:
        for p in latents:
            group = sorted((r for r in rows if int(r["model.depth"]) == d and int(r["model.latent_dim"]) == p),
                           key=lambda r: int(r["seed"]))
            ch = [checks.get(r["run"], {}) for r in group]
            out.append(f"| {d} | {p} | {mean_sd([f(r, 'evidence') for r in group])} | "
                       f"{mean_sd([f(r, 'evidence_sigma') for r in group])} | "
                       f"{mean_sd([c.get('exact_at_fit', math.nan) for c in ch])} | "
                       f"{mean_sd([c.get('bdmc_gap', math.nan) for c in ch])} | "
                       f"{mean_sd([f(r, 'chi2_score') for r in group])} | "
                       f"{mean_sd([f(r, 'top_eigenvalue') for r in group])} | "
                       + ", ".join(f"{f(r, 'evidence'):.3f}" for r in group) + " |")
    out.append("")
    # the claim: every P >= 2 above P = 1, per depth and seed; the same for chi2 (lower is better)
    seeds = sorted({int(r["seed"]) for r in rows})
    for d in depths:
        for score, sign in (("evidence", 1), ("chi2_score", -1), ("top_eigenvalue", -1)):
            ok = 0
            for s in seeds:
                cell = {int(r["model.latent_dim"]): sign * f(r, score) for r in rows
                        if int(r["model.depth"]) == d and int(r["seed"]) == s}
                if 1 in cell and all(cell[p] > cell[1] for p in cell if p >= 2):
                    ok += 1
            better = "higher" if sign > 0 else "lower"
            out.append(f"- depth {d}: every P >= 2 {better} {score} than P = 1 in {ok} of {len(seeds)} seeds")
        exact_ok = 0
        for s in seeds:
            cell = {int(r["model.latent_dim"]): checks.get(r["run"], {}).get("exact_at_exact", math.nan) for r in rows
                    if int(r["model.depth"]) == d and int(r["seed"]) == s}
            if d == 0 and 1 in cell and all(cell[p] > cell[1] for p in cell if p >= 2):
                exact_ok += 1
        if d == 0:
            out.append(f"- depth 0, exact evidence at the exact ML sigma: every P >= 2 above P = 1 in {exact_ok} of "
                       f"{len(seeds)} seeds")
    large = {p.stem: json.loads(p.read_text()) for p in (GAUSS / "checks_large").glob("*.json")}
    if large:
        n_large = len(next(iter(large.values()))["points"])
        out += ["", f"Larger fresh test draw ({n_large} points of N(0, I_2), AIS at the fitted sigma; the density "
                f"of N(0, I) itself averages {-math.log(2 * math.pi) - 1:.4f} there in expectation):", "",
                "| depth | P | AIS evidence | exact (depth 0) | per seed: minus P = 1 of the same seed (paired se) |",
                "|---|---|---|---|---|"]
        for d in depths:
            for p in latents:
                group = sorted((r for r in rows if int(r["model.depth"]) == d and int(r["model.latent_dim"]) == p),
                               key=lambda r: int(r["seed"]))
                cells = []
                for r in group:
                    ref = next((x for x in rows if int(x["model.depth"]) == d and int(x["model.latent_dim"]) == 1
                                and x["seed"] == r["seed"]), None)
                    if r["run"] in large and ref is not None and ref["run"] in large and p != 1:
                        a, b_ = large[r["run"]]["points"], large[ref["run"]]["points"]
                        cells.append(f"{statistics.fmean(a) - statistics.fmean(b_):+.3f} ({paired_se(a, b_):.3f})")
                vals = [large[r["run"]] for r in group if r["run"] in large]
                out.append(f"| {d} | {p} | {mean_sd([v['ais'] for v in vals], 4)} | "
                           f"{mean_sd([v.get('exact', math.nan) for v in vals], 4)} | {', '.join(cells) or '-'} |")
        for d in depths:
            ok = 0
            for s in seeds:
                cell = {int(r["model.latent_dim"]): large[r["run"]]["ais"] for r in rows
                        if int(r["model.depth"]) == d and int(r["seed"]) == s and r["run"] in large}
                if 1 in cell and all(cell[p] > cell[1] for p in cell if p >= 2):
                    ok += 1
            out.append(f"- depth {d}, larger test draw: every P >= 2 above P = 1 in {ok} of {len(seeds)} seeds")
    ranking = GAUSS / "ranking.md"
    if ranking.is_file():
        out += ["", "`occamgan select` (ranking.md, grid points by mean evidence):", ""]
        lines = ranking.read_text().splitlines()
        out += lines[2: lines.index("", 3)] if "" in lines[3:] else lines[2:]
    return "\n".join(out) + "\n"


# ==================================================================== c. MNIST, DCGAN-32 on CPU
MNIST = OUT / "mnist"
#: (label, objective, stages in generator steps, extra config): each stage resumes a copy of the
#: previous one; wgan_div_relax is the likelihood-relaxation strategy of mnist.md (sigma 0.1)
LADDERS = [("wgan_div", "wgan_div", [100, 200, 400, 600], {}), ("rgan", "rgan", [200, 400], {}),
           ("wgan_div_relax", "wgan_div", [400], {"regularizers": {"sigma": 0.1}})]
OBJECTIVE_SETUP = {"rgan": (1, 2e-4, "batch"), "wgan_div": (5, 1e-3, "none")}  # as docs/experiments/mnist.py


def mnist_config(objective: str, steps: int, extra: dict | None = None) -> dict:
    """docs/experiments/mnist.md's CPU setup (DCGAN-32, ngf = ndf = 16, latent 100, batch 64,
    Adam(0.5, 0.999), constant lr after a 24-step warm-up), baseline strategy unless ``extra``."""
    n_critic, lr, d_norm = OBJECTIVE_SETUP[objective]
    return {**(extra or {}),
        "seed": SEED,
        "data": {"name": "mnist", "root": MNIST_ROOT, "image_size": 32, "channels": 1},
        "model": {"name": "dcgan", "latent_dim": 100, "ngf": 16, "ndf": 16, "d_norm": d_norm},
        "objective": {"name": objective},
        "train": {"steps": steps, "lr_decay": "none", "batch_size": 64, "n_critic": n_critic, "lr_g": lr, "lr_d": lr,
                  "betas": [0.5, 0.999], "warmup_steps": 24, "ema_start": 0, "ema_decay": 0.995, "log_every": 50,
                  "checkpoint_every": steps, "device": "cpu", "report": False},
        "eval": {"n_samples": 64, "use_ema": False},
    }


def mnist_train() -> list[Path]:
    from occamgan import api

    dirs = []
    for label, objective, stages, extra in LADDERS:
        previous = None
        for steps in stages:
            run_dir = MNIST / f"{label}_{steps}"
            if not (run_dir / "summary.json").is_file():
                t = time.process_time()
                if previous is not None:  # continue a copy of the previous stage
                    shutil.rmtree(run_dir, ignore_errors=True)
                    shutil.copytree(previous, run_dir)
                    api.train(mnist_config(objective, steps, extra), out=run_dir, resume=True, progress=False)
                else:
                    api.train(mnist_config(objective, steps, extra), out=run_dir, overwrite=True, progress=False)
                write_json(run_dir.parent / f"{run_dir.name}.train.json", {"cpu_s": time.process_time() - t})
            previous = run_dir
            dirs.append(run_dir)
    return dirs


def mnist_score(run_dir: Path, args: argparse.Namespace) -> dict:
    from occamgan.evaluation import evaluate_run
    from occamgan.model_evidence import bdmc, evidence, fit_run_sigma, held_out_data
    from occamgan.runs import load_run

    run = load_run(run_dir)
    t0 = time.process_time()
    fid = evaluate_run(run_dir, ["fid_lenet"], n=args.n_fid, n_ref=args.n_fid, reference_split="test", use_ema=False,
                       record=False)
    t1 = time.process_time()
    x_val = held_out_data(run.config, "validation", args.n_val, kind="image")
    x_test = held_out_data(run.config, "test", args.n_test, kind="image")
    fit = fit_run_sigma(run, x_val, use_ema=False, chains=args.chains, steps=args.fit_steps, leapfrog=5, seed=0,
                        xatol=0.1)
    t2 = time.process_time()
    res = evidence(run, x_test, sigma=fit.sigma, use_ema=False, chains=args.chains, steps=args.ais_steps, leapfrog=5,
                   seed=1)
    t3 = time.process_time()
    bounds = bdmc(run, args.bdmc_n, sigma=fit.sigma, use_ema=False, chains=args.chains, steps=args.ais_steps,
                  leapfrog=5, seed=2)
    t4 = time.process_time()
    return {"run": run_dir.name, "step": run.step, "fid_lenet": fid["fid_lenet"], "sigma_fit": fit.sigma,
            "sigma_curve": fit.curve, "ais": res.mean, "ais_stderr": res.stderr, "ais_per_dim": res.mean_per_dim,
            "bits_per_dim": res.bits_per_dim, "ais_points": res.log_px.tolist(), "bdmc_lower": bounds.lower_mean,
            "bdmc_upper": bounds.upper_mean, "bdmc_gap": bounds.gap_mean, "diagnostics": res.diagnostics,
            "protocol": res.protocol, "n_val": len(x_val), "n_test": len(x_test), "bdmc_n": args.bdmc_n,
            "cpu_s": {"fid": t1 - t0, "fit": t2 - t1, "ais": t3 - t2, "bdmc": t4 - t3}}


def mnist(args: argparse.Namespace) -> None:
    threads()
    for run_dir in mnist_train():
        path = run_dir.parent / f"{run_dir.name}.score.json"
        if path.is_file():
            continue
        score = mnist_score(run_dir, args)
        write_json(path, score)
        print(json.dumps({k: v for k, v in score.items() if k not in ("ais_points", "sigma_curve", "protocol")}),
              flush=True)


def mnist_long(args: argparse.Namespace) -> None:
    """AIS on the same test images and BDMC with more intermediate distributions, at the sigma
    the score fitted: how far the T of the main table is from convergence."""
    threads()
    from occamgan.model_evidence import bdmc, evidence, held_out_data
    from occamgan.runs import load_run

    for name in args.runs:
        path = MNIST / f"{name}.long{args.ais_steps}.json"
        if path.is_file():
            continue
        score = json.loads((MNIST / f"{name}.score.json").read_text())
        run = load_run(MNIST / name)
        x_test = held_out_data(run.config, "test", score["n_test"], kind="image")
        t = time.process_time()
        res = evidence(run, x_test, sigma=score["sigma_fit"], use_ema=False, chains=score["protocol"]["chains"],
                       steps=args.ais_steps, leapfrog=5, seed=1)
        bounds = bdmc(run, score["bdmc_n"], sigma=score["sigma_fit"], use_ema=False,
                      chains=score["protocol"]["chains"], steps=args.ais_steps, leapfrog=5, seed=2)
        out = {"run": name, "steps": args.ais_steps, "ais": res.mean, "ais_stderr": res.stderr,
               "ais_points": res.log_px.tolist(), "bdmc_lower": bounds.lower_mean, "bdmc_upper": bounds.upper_mean,
               "bdmc_gap": bounds.gap_mean, "diagnostics": res.diagnostics, "cpu_s": time.process_time() - t}
        write_json(path, out)
        print(json.dumps({k: v for k, v in out.items() if k != "ais_points"}), flush=True)


def mnist_report() -> str:
    scores = [json.loads(p.read_text()) for p in sorted(MNIST.glob("*.score.json"))]
    if not scores:
        return "(no MNIST scores yet)\n"
    order = {f"{label}_{s}": i for i, (label, _, stages, _) in enumerate(LADDERS) for s in stages}
    scores.sort(key=lambda s: (order.get(s["run"], 99), s["step"]))
    out = ["| run | G steps | fid_lenet | sigma fitted | AIS log p(x) (nats/image) | per dim | bits/dim | "
           "BDMC lower / upper (gap) | acceptance |", "|---|---|---|---|---|---|---|---|---|"]
    for s in scores:
        out.append(f"| {s['run']} | {s['step']} | {s['fid_lenet']:.1f} | {s['sigma_fit']:.3f} | "
                   f"{s['ais']:.0f} ± {s['ais_stderr']:.0f} | {s['ais_per_dim']:.3f} | {s['bits_per_dim']:.2f} | "
                   f"{s['bdmc_lower']:.0f} / {s['bdmc_upper']:.0f} ({s['bdmc_gap']:.0f}) | "
                   f"{s['diagnostics']['acceptance_mean']:.2f} |")
    out.append("")
    by_fid = [s["run"] for s in sorted(scores, key=lambda s: s["fid_lenet"])]
    by_ais = [s["run"] for s in sorted(scores, key=lambda s: -s["ais"])]
    out.append(f"- order by fid_lenet (best first): {', '.join(by_fid)}")
    out.append(f"- order by AIS evidence (best first): {', '.join(by_ais)}")
    if len(scores) > 2:
        from scipy.stats import spearmanr

        rho = spearmanr([s["fid_lenet"] for s in scores], [-s["ais"] for s in scores]).statistic
        out.append(f"- Spearman correlation of fid_lenet with -evidence: {rho:.2f} over {len(scores)} generators")
    longs = [json.loads(p.read_text()) for p in sorted(MNIST.glob("*.long*.json"))]
    if longs:
        out += ["", "| run | T | AIS log p(x) | change from the main table (paired se) | BDMC lower / upper (gap) | "
                "acceptance |", "|---|---|---|---|---|---|"]
        for lg in longs:
            base = next(s for s in scores if s["run"] == lg["run"])
            se = paired_se(lg["ais_points"], base["ais_points"])
            out.append(f"| {lg['run']} | {lg['steps']} | {lg['ais']:.0f} ± {lg['ais_stderr']:.0f} | "
                       f"{lg['ais'] - base['ais']:+.0f} ({se:.0f}) | {lg['bdmc_lower']:.0f} / {lg['bdmc_upper']:.0f} "
                       f"({lg['bdmc_gap']:.0f}) | {lg['diagnostics']['acceptance_mean']:.2f} |")
    train_cpu = sum(json.loads(p.read_text())["cpu_s"] for p in MNIST.glob("*.train.json"))
    score_cpu = sum(sum(s["cpu_s"].values()) for s in scores) + sum(lg["cpu_s"] for lg in longs)
    out.append(f"- CPU time: training {train_cpu / 60:.1f} min, scoring {score_cpu / 60:.1f} min")
    return "\n".join(out) + "\n"


# ============================================================================ report and figures
def figures() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scores = [json.loads(p.read_text()) for p in sorted(PPCA.glob("d*/P*.score.json"))]
    if scores:
        latents = sorted({s["P"] for s in scores})
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
        for key, label, ax in (("ais", "AIS (sigma fitted by AIS)", axes[0]),
                               ("exact_at_exact", "exact (sigma fitted exactly)", axes[0]),
                               ("ml_ppca_test", "ML pPCA (Tipping & Bishop)", axes[0])):
            means = [statistics.fmean(s[key] for s in scores if s["P"] == p) for p in latents]
            ax.plot(latents, means, marker="o", label=label)
        axes[0].set_xlabel("latent dimension P")
        axes[0].set_ylabel("held-out log p(x), nats/point (mean of draws)")
        axes[0].axvline(3, color="gray", linestyle=":")
        axes[0].legend(fontsize=8)
        # right: every draw's evidence relative to its own P = 3, for P >= 3
        upper = [p for p in latents if p >= 3]
        control = [json.loads(q.read_text()) for q in sorted(OUT.glob("ppca_train_sigma*/d*/P*.score.json"))]
        series = [(scores, "ais", "tab:blue", "AIS, GAN trained without relaxation"),
                  (scores, "ml_ppca_test", "tab:green", "ML pPCA"),
                  (control, "ais", "tab:orange", "AIS, GAN trained with sigma = 0.1")]
        for group, key, color, label in series:
            for i, d in enumerate(sorted({s["draw"] for s in group})):
                cell = {s["P"]: s[key] for s in group if s["draw"] == d}
                xs = [p for p in upper if p in cell]
                if 3 in cell and len(xs) > 1:
                    axes[1].plot(xs, [cell[p] - cell[3] for p in xs], color=color, alpha=0.5, marker=".",
                                 label=label if i == 0 else None)
        axes[1].axhline(0, color="gray", linestyle=":")
        axes[1].set_xticks(upper)
        axes[1].set_xlabel("latent dimension P")
        axes[1].set_ylabel("log p(x) minus that of P = 3 (same draw)")
        axes[1].legend(fontsize=8)
        fig.suptitle("pPCA data (D = 10, true rank 3): evidence of MMD-trained linear generators")
        fig.tight_layout()
        fig.savefig(HERE / "evidence_ppca.png", dpi=80)
        print(f"figure: {HERE / 'evidence_ppca.png'}")


def report(args: argparse.Namespace) -> None:
    controls = "".join(f"\n### control: {d.name}\n\n" + ppca_report(d) for d in sorted(OUT.glob("ppca_train_sigma*")))
    text = ("## a. pPCA\n\n" + ppca_report() + controls + "\n## b. 2-D Gaussian\n\n" + gaussian_report() +
            "\n## c. MNIST\n\n" + mnist_report())
    print(text)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "tables.md").write_text(text)
    if not args.no_figures:
        figures()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("ppca", help="a: linear MMD generators on pPCA data")
    p.add_argument("--draws", nargs="+", type=int, default=list(range(10)), help="data.seed values")
    p.add_argument("--latents", nargs="+", type=int, default=[1, 2, 3, 4, 5, 6])
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--n-train", type=int, default=1000)
    p.add_argument("--n-val", type=int, default=200)
    p.add_argument("--n-test", type=int, default=1000)
    p.add_argument("--chains", type=int, default=8)
    p.add_argument("--fit-steps", type=int, default=200)
    p.add_argument("--ais-steps", type=int, default=500)
    p.add_argument("--train-sigma", type=float, default=0.0,
                   help="likelihood relaxation during training (a control; runs go to ppca_train_sigma<value>/)")
    p = sub.add_parser("gaussian", help="b: the 2-D Gaussian sweep with the evidence metric")
    p.add_argument("--n", type=int, default=200, help="validation and test points")
    p.add_argument("--chains", type=int, default=8)
    p.add_argument("--ais-steps", type=int, default=200)
    p.add_argument("--bdmc-n", type=int, default=50)
    p.add_argument("--checks-only", action="store_true", help="only the exact/BDMC checks of a finished sweep")
    p.add_argument("--n-large", type=int, default=5000, help="points of the larger N(0, I) test draw")
    p.add_argument("--large-chains", type=int, default=4, help="AIS chains per point on it")
    p.add_argument("--large-steps", type=int, default=200, help="AIS steps on it")
    p = sub.add_parser("mnist", help="c: DCGAN-32 on MNIST, AIS with BDMC against LeNet FID")
    p.add_argument("--n-val", type=int, default=20)
    p.add_argument("--n-test", type=int, default=50)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--fit-steps", type=int, default=50)
    p.add_argument("--ais-steps", type=int, default=100)
    p.add_argument("--bdmc-n", type=int, default=10)
    p.add_argument("--n-fid", type=int, default=2000)
    p = sub.add_parser("mnist-long", help="c: longer AIS and BDMC for some scored MNIST runs")
    p.add_argument("--runs", nargs="+", default=["wgan_div_400", "wgan_div_600"])
    p.add_argument("--ais-steps", type=int, default=500)
    p = sub.add_parser("report", help="every table (printed and written to sweeps/evidence/tables.md)")
    p.add_argument("--no-figures", action="store_true")
    args = ap.parse_args()
    if args.cmd == "ppca":
        ppca(args)
    elif args.cmd == "gaussian":
        if not args.checks_only:
            gaussian(args)
        gaussian_checks(args)
        gaussian_large_test(args)
    elif args.cmd == "mnist":
        mnist(args)
    elif args.cmd == "mnist-long":
        mnist_long(args)
    else:
        report(args)


if __name__ == "__main__":
    main()
