"""Choosing the relaxation width sigma by held-out evidence (Filippone & Linhard 2025, Sec.
"Likelihood relaxation"; docs/methods.md sections 1 and 9).

sigma is a hyperparameter of the relaxed model N(x | G(z), sigma^2 I): too small and the model
puts no mass off the generator's P-dimensional manifold, too large and it blurs everything. We
pick it by maximising the mean held-out log-likelihood (1/n) sum_i log p(x_i | psi, sigma) over
log sigma with a bounded scalar search (Brent's method on an interval, ``scipy.optimize.
minimize_scalar(method="bounded")``). Every evaluation uses the same seed (common random
numbers: the same latents, momenta and uniforms for every sigma), so the Monte Carlo noise is
strongly correlated across sigma and the curve is smooth enough for the search.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scipy.optimize import minimize_scalar
from torch import Tensor, nn

from .evidence import EvidenceResult, estimate_evidence

#: default bounds relative to the data scale max |x|: (1e-3, 1) for images in [-1, 1]
RELATIVE_BOUNDS = (1e-3, 1.0)


@dataclass
class SigmaFit:
    """The best sigma, its evidence, and every evaluation as (sigma, mean log p) sorted by sigma."""

    sigma: float
    result: EvidenceResult
    curve: list[tuple[float, float]] = field(default_factory=list)
    bounds: tuple[float, float] = (0.0, 0.0)


def default_bounds(x: Tensor) -> tuple[float, float]:
    """(1e-3, 1) times the data scale max |x| (so (1e-3, 1) for images in [-1, 1])."""
    scale = float(x.detach().abs().max())
    if not scale > 0:
        raise ValueError("cannot derive sigma bounds from all-zero data; pass bounds")
    return RELATIVE_BOUNDS[0] * scale, RELATIVE_BOUNDS[1] * scale


def fit_sigma(generator: nn.Module, x_val: Tensor, *, latent_dim: int, bounds: tuple[float, float] | None = None,
              method: str = "ais", xatol: float = 0.05, maxiter: int = 20, **evidence_kwargs: Any) -> SigmaFit:
    """The sigma in ``bounds`` maximising the mean of log p(x | psi, sigma) over ``x_val``.

    The search runs on log sigma to absolute tolerance ``xatol`` (0.05 = 5% in sigma) for at
    most ``maxiter`` evaluations; ``evidence_kwargs`` (chains, steps, leapfrog, seed, batch_size,
    device, schedule, ...) go to :func:`estimate_evidence` unchanged for every evaluation."""
    lo, hi = default_bounds(x_val) if bounds is None else (float(bounds[0]), float(bounds[1]))
    if not 0 < lo < hi:
        raise ValueError(f"bounds must satisfy 0 < low < high, got {(lo, hi)}")
    evaluations: dict[float, EvidenceResult] = {}

    def negative_mean(log_sigma: float) -> float:
        sigma = math.exp(log_sigma)
        res = estimate_evidence(generator, x_val, latent_dim=latent_dim, sigma=sigma, method=method, **evidence_kwargs)
        evaluations[sigma] = res
        return -res.mean if math.isfinite(res.mean) else math.inf

    minimize_scalar(negative_mean, bounds=(math.log(lo), math.log(hi)), method="bounded",
                    options={"xatol": xatol, "maxiter": maxiter})
    # the best evaluation, which is the optimiser's answer unless noise made it stop elsewhere
    best = max(evaluations, key=lambda s: evaluations[s].mean)
    curve = sorted((s, r.mean) for s, r in evaluations.items())
    return SigmaFit(sigma=best, result=evaluations[best], curve=curve, bounds=(lo, hi))


def plot_sigma_curve(curve: list[tuple[float, float]], path: str | Path, best: float | None = None,
                     title: str = "held-out evidence against sigma") -> Path:
    """Write a PNG of mean log p against sigma (log axis), marking ``best`` if given."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    fig = Figure(figsize=(5, 3.5), dpi=110)
    FigureCanvasAgg(fig)  # an Agg canvas of its own: no pyplot state, no global backend switch
    ax = fig.add_subplot()
    sigmas, values = zip(*sorted(curve)) if curve else ((), ())
    ax.plot(sigmas, values, "o-", color="tab:blue")
    if best is not None:
        ax.axvline(best, color="tab:orange", linestyle="--", label=f"sigma = {best:.3g}")
        ax.legend(loc="best")
    ax.set_xscale("log")
    ax.set_xlabel("sigma")
    ax.set_ylabel("mean log p(x) [nats]")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    return path
