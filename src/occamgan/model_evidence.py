"""The evidence of a trained generator, from the run's point of view: which held-out data it is
measured on, how sigma is chosen, and where the result goes. The estimators themselves are pure
functions in :mod:`occamgan.bayes` (importance sampling, AIS with HMC, BDMC, Laplace).

Held-out data (:func:`held_out_data`):
- image sets: ``test`` is the test split; ``validation`` (for fitting sigma) is a seeded subset of
  the training split, which the generator has seen, so a fitted sigma can be slightly optimistic;
- toy sets: a fresh seeded draw of the same distribution, with data seed ``data.seed + 7919``
  (``test``) or ``data.seed + 7927`` (``validation``); the training set itself uses ``data.seed``.
Either way the first ``n`` points of a fixed seeded permutation are taken, so the same run, n and
split always give the same points.
"""
from __future__ import annotations

import logging
import math
import os
from typing import Any

import torch
from torch import Tensor, nn

from .bayes.evidence import EvidenceResult, estimate_evidence, simulate_and_bound
from .bayes.bdmc import BDMCResult
from .bayes.sigma_fit import SigmaFit, fit_sigma
from .config import Config, build_config
from .data.base import build_data
from .errors import ConfigError
from .metrics.reference import reference_indices
from .runs import LoadedRun, load_run

#: data-seed offsets of the toy held-out draws (primes, far from the seeds sweeps use)
HELD_OUT_SEED_OFFSETS = {"test": 7919, "validation": 7927}
SPLITS = ("test", "validation", "train")
log = logging.getLogger("occamgan")
_warned: set[tuple[int, int]] = set()


def held_out_data(cfg: Config, split: str, n: int | None = None, kind: str = "toy") -> Tensor:
    """``n`` held-out points of the run's data (of ``kind`` "toy" or "image") for ``split``
    (test, validation, train); see the module doc. ``n=None`` takes every point of the split."""
    if split not in SPLITS:
        raise ConfigError(f"--split must be one of {', '.join(SPLITS)} (got {split!r})")
    tree = cfg.to_dict()
    if split != "train" and kind == "image":
        tree["data"]["split"] = "test" if split == "test" else "train"
    elif split != "train":
        tree["data"]["seed"] = cfg.data.seed + HELD_OUT_SEED_OFFSETS[split]
        if n is not None:
            tree["data"]["n_samples"] = max(n, 2)
    data = build_data(build_config(tree))
    idx = reference_indices(len(data), n)
    if data.stream is not None:
        return torch.stack([data.stream[int(i)][1] for i in idx])
    return data.data[idx]


def generator_of(source: Any, latent_dim: int | None, use_ema: bool) -> tuple[nn.Module, int]:
    """(generator, latent dimension) of a run directory, a loaded run or a module z -> x."""
    if isinstance(source, (str, os.PathLike)):
        source = load_run(source)
    if isinstance(source, LoadedRun):
        return source.generator_for(use_ema), source.latent_dim
    if isinstance(source, nn.Module):
        if latent_dim is None:
            raise ValueError("latent_dim is required when the source is a module")
        return source, int(latent_dim)
    raise TypeError(f"cannot take the evidence of a {type(source).__name__}: pass a run directory, a loaded run "
                    "or an nn.Module mapping z (n, P) to samples")


def evidence(source: Any, x: Tensor, *, sigma: float, method: str = "ais", chains: int = 16, steps: int = 1000,
             leapfrog: int = 10, seed: int = 0, latent_dim: int | None = None, batch_size: int | None = None,
             device: torch.device | str | None = None, progress: Any = None, use_ema: bool = True,
             **estimator: Any) -> EvidenceResult:
    """log p(x | psi) per point of ``x`` under the relaxed model N(x | G(z), sigma^2 I), z ~ N(0, I)
    (Filippone & Linhard 2025; docs/methods.md sections 1 and 9), by AIS with HMC (``method="ais"``,
    Wu et al. 2017) or prior importance sampling (``"is"``). ``source``: a run directory, a loaded
    run (its EMA generator unless ``use_ema=False``) or a module mapping z (n, P) to samples
    (then ``latent_dim=P``). Further keywords (``schedule``, ``target_acceptance``, ...) go to
    :func:`occamgan.bayes.evidence.estimate_evidence`."""
    generator, latent_dim = generator_of(source, latent_dim, use_ema)
    return estimate_evidence(generator, x, latent_dim=latent_dim, sigma=sigma, method=method, chains=chains,
                             steps=steps, leapfrog=leapfrog, seed=seed, batch_size=batch_size, device=device,
                             progress=progress, **estimator)


def bdmc(source: Any, n: int, *, sigma: float, chains: int = 16, steps: int = 1000, leapfrog: int = 10,
         seed: int = 0, latent_dim: int | None = None, batch_size: int | None = None,
         device: torch.device | str | None = None, progress: Any = None, use_ema: bool = True,
         **estimator: Any) -> BDMCResult:
    """Bidirectional Monte Carlo (Grosse et al. 2015) on ``n`` points simulated from the model:
    stochastic lower (forward AIS) and upper (reverse AIS) bounds on log p(x) and their gap, the
    reliability of AIS at these settings."""
    generator, latent_dim = generator_of(source, latent_dim, use_ema)
    return simulate_and_bound(generator, n, latent_dim=latent_dim, sigma=sigma, chains=chains, steps=steps,
                              leapfrog=leapfrog, seed=seed, batch_size=batch_size, device=device, progress=progress,
                              **estimator)


def fit_run_sigma(source: Any, x_val: Tensor, *, latent_dim: int | None = None, use_ema: bool = True,
                  bounds: tuple[float, float] | None = None, **settings: Any) -> SigmaFit:
    """sigma by maximum held-out marginal likelihood (a bounded search over log sigma with common
    random numbers; :func:`occamgan.bayes.sigma_fit.fit_sigma`)."""
    generator, latent_dim = generator_of(source, latent_dim, use_ema)
    return fit_sigma(generator, x_val, latent_dim=latent_dim, bounds=bounds, **settings)


def warn_if_degenerate(cfg: Config, data_dim: int) -> None:
    """Filippone & Linhard, Thm 4.2: with latent_dim below the data dimension and no likelihood
    relaxation the model's support is a P-dimensional manifold, so it has no density on data space
    and its evidence is -inf. Warns once per (P, D) in a process."""
    latent = cfg.model.latent_dim
    if latent < data_dim and cfg.regularizers.sigma == 0 and (latent, data_dim) not in _warned:
        _warned.add((latent, data_dim))
        log.warning(f"warning: model.latent_dim = {latent} < data dimension {data_dim} with regularizers.sigma = 0: "
                    "the generator's samples lie on a lower-dimensional manifold, so it has no density on the data "
                    "(Filippone & Linhard, Thm 4.2); its evidence needs sigma > 0 (occamgan evidence --sigma or "
                    "--fit-sigma)")


def result_record(result: EvidenceResult, split: str, generator: str) -> dict[str, Any]:
    """What summary.json keeps of an evidence estimate (no per-point values)."""
    record = {k: v for k, v in result.to_dict().items() if k != "log_px"}
    record.update(split=split, generator=generator, n=result.n)
    if not math.isfinite(record.get("stderr", math.nan)):
        record["stderr"] = None
    return record


def evidence_of_run(run_dir: Any, *, split: str = "test", n: int = 200, method: str = "ais", chains: int = 16,
                    steps: int = 1000, leapfrog: int = 10, schedule: str = "sigmoid", sigma: float | None = None,
                    fit: bool = False, with_bdmc: bool = False, with_laplace: bool = False,
                    prior_precision: float = 1.0, use_ema: bool = True, seed: int = 0,
                    batch_size: int | None = None, record: bool = True, progress: bool | None = None,
                    echo: Any = None) -> dict[str, Any]:
    """What ``occamgan evidence`` does: estimate, print (``echo``) before anything is written,
    then record under ``summary.json["evidence"]`` with the full protocol."""
    from tqdm.auto import tqdm

    from .train.run_dir import RunDir

    echo = echo or (lambda line: None)
    if method not in ("is", "ais"):
        raise ConfigError(f"--method must be is or ais (got {method!r})")
    if schedule not in ("sigmoid", "linear", "geometric"):
        raise ConfigError(f"--schedule must be sigmoid, linear or geometric (got {schedule!r})")
    if sigma is not None and fit:
        raise ConfigError("--sigma and --fit-sigma exclude each other")
    if sigma is not None and not sigma > 0:
        raise ConfigError(f"--sigma must be > 0 (got {sigma})")
    run = load_run(run_dir)
    files = RunDir(run.run_dir)
    if record:
        files.check_writable()
    kind = run.data.kind
    x = held_out_data(run.config, split, n, kind=kind)
    settings = dict(method=method, chains=chains, steps=steps, leapfrog=leapfrog, schedule=schedule, seed=seed,
                    batch_size=batch_size)
    report: dict[str, Any] = {}
    fitted = None
    if sigma is None and not fit:
        sigma = run.config.regularizers.sigma or None
        if sigma is None:
            raise ConfigError(f"{str(run.run_dir)!r} was trained without likelihood relaxation "
                              "(regularizers.sigma = 0): pass --sigma S or --fit-sigma")
    if fit:
        x_val = held_out_data(run.config, "validation", n, kind=kind)
        fitted = fit_run_sigma(run, x_val, use_ema=use_ema, **settings)
        sigma = fitted.sigma
        echo(f"sigma fitted on {len(x_val)} validation points: {sigma:.6g} "
             f"({len(fitted.curve)} evaluations in [{fitted.bounds[0]:.3g}, {fitted.bounds[1]:.3g}])")
    generator = ("ema" if use_ema else "raw")
    bar = tqdm(total=steps, desc="annealing", unit="step", disable=None if progress is None else not progress) \
        if method == "ais" else None
    try:
        result = evidence(run, x, sigma=float(sigma), use_ema=use_ema, progress=bar, **settings)
    finally:
        if bar is not None:
            bar.close()
    record_ = result_record(result, split, generator)
    if kind != "image":
        record_.pop("bits_per_dim", None)  # bits/dim are a figure of 8-bit images only
    if fitted is not None:
        record_["sigma_fit"] = {"curve": fitted.curve, "bounds": list(fitted.bounds), "split": "validation"}
    echo(f"log p(x) = {result.mean:.6g} ± {result.stderr:.3g} nats per point ({result.n} {split} points, "
         f"{method}, sigma {float(sigma):.6g}, {generator} generator)")
    echo(f"per dimension {result.mean_per_dim:.6g} nats" + (f"; {result.bits_per_dim:.6g} bits/dim" if kind == "image" else ""))
    if with_bdmc:
        bounds = bdmc(run, n, sigma=float(sigma), use_ema=use_ema, chains=chains, steps=steps, leapfrog=leapfrog,
                      schedule=schedule, seed=seed, batch_size=batch_size)
        record_["bdmc"] = {k: v for k, v in bounds.to_dict().items() if not isinstance(v, list)}
        echo(f"BDMC on {n} simulated points: lower {bounds.lower_mean:.6g}, upper {bounds.upper_mean:.6g}, "
             f"gap {bounds.gap_mean:.3g} nats")
    if with_laplace:
        record_["laplace"] = laplace_of_run(run, prior_precision, use_ema=use_ema, seed=seed)
        echo(f"Laplace (surrogate: N L_G): log evidence {record_['laplace']['log_evidence']:.6g}, "
             f"Occam factor {record_['laplace']['occam_factor']:.6g}")
    if fitted is not None and record:
        from .bayes.sigma_fit import plot_sigma_curve

        report["sigma_plot"] = str(plot_sigma_curve(fitted.curve, files.sigma_curve_path, best=sigma))
    if record:
        with files.lock():
            summary = files.read_summary() or {"step": run.step}
            summary["evidence"] = record_
            files.write_summary(summary)
    report["evidence"] = record_
    return report


def laplace_of_run(run: LoadedRun, prior_precision: float, use_ema: bool = True, seed: int = 0) -> dict[str, Any]:
    """The surrogate Laplace evidence of the run's generator: N L_G at one seeded training batch in
    place of -log p(X | psi) (the paper's flat-minimum argument), a Gaussian prior of the given
    precision, and log |det H| since the trained point is a saddle of the game rather than a
    minimum of L_G (:func:`occamgan.bayes.laplace.gan_laplace_evidence`). The record says so."""
    from .bayes.laplace import gan_laplace_evidence
    from .diagnostics.hessian import data_batches, player_loss

    game, data = run.game, run.data
    generator = run.generator_for(use_ema)
    batch = data_batches(data.data, run.config.train.batch_size, 1, seed)[0].to(run.device)
    z = game.sample_latent(batch.shape[0], generator=torch.Generator().manual_seed(seed))
    frozen = [q for q in generator.parameters() if not q.requires_grad]
    for q in frozen:
        q.requires_grad_(True)
    try:
        with torch.enable_grad():
            loss, params = player_loss(game, batch, z, "g", generator=generator)
            # a trained GAN sits at a saddle of its game, rarely at a minimum of L_G: log |det H|
            result = gan_laplace_evidence(loss, params, n_data=len(data), prior_precision=prior_precision, seed=seed,
                                          indefinite="abs")
    finally:
        for q in frozen:
            q.requires_grad_(False)
    return result.to_dict()
