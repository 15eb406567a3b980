"""Importance sampling of the evidence with the prior as proposal (docs/methods.md section 9).

    p(x) = E_{z ~ N(0, I)} N(x | G(z), sigma^2 I)  ~  (1/K) sum_k N(x | G(z_k), sigma^2 I),

so log p^(x) = logmeanexp_k log N(x | G(z_k), sigma^2 I). The estimate of p(x) is unbiased, hence
(Jensen) log p^ is a stochastic lower bound of log p in expectation. With the prior as proposal
the weights degenerate as sigma shrinks: the posterior occupies a region of prior mass roughly
(sigma / |dG/dz|)^P, so almost every z_k contributes nothing. The effective sample size
ESS = (sum_k w_k)^2 / sum_k w_k^2 (Kong 1992; between 1 and K) shows it per point; AIS
(:mod:`occamgan.bayes.ais`) is the estimator that survives small sigma.

Samples are processed in chunks (``batch_size`` latents per generator forward) with running
log-sum-exps of w and w^2, so memory does not grow with K.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .likelihood import evaluation_mode, flatten_points, generator_dtype, decode, gaussian_log_density


@dataclass
class ImportanceResult:
    """Per-point log p^(x) (float64, (n,)) and effective sample sizes (float64, (n,)) of K samples."""

    log_px: Tensor
    ess: Tensor
    samples: int


def logmeanexp(a: Tensor, dim: int = -1) -> Tensor:
    """log mean exp along ``dim``, stable for very negative entries."""
    return torch.logsumexp(a, dim) - math.log(a.shape[dim])


def batch_shape(points: int, chains: int, batch_size: int | None) -> tuple[int, int]:
    """(points per forward, chains per forward) so that their product is at most ``batch_size``
    (None: everything at once); a forward holds at least one latent."""
    if batch_size is None:
        return points, chains
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer or None, got {batch_size}")
    if batch_size >= chains:
        return max(1, min(points, batch_size // chains)), chains
    return 1, batch_size


@torch.no_grad()
def importance_sampling(generator: nn.Module, x: Tensor, *, latent_dim: int, sigma: float, samples: int,
                        rng: torch.Generator, batch_size: int | None = None) -> ImportanceResult:
    """log p^(x) = logmeanexp_k log N(x | G(z_k), sigma^2 I), z_k ~ N(0, I_P) drawn from ``rng``
    on the generator's device, and the ESS of the weights, for every point of ``x`` (n, ...).

    Deterministic for a given ``rng`` state and ``batch_size`` (which fixes the order in which
    the latents are drawn)."""
    if samples < 1:
        raise ValueError(f"samples must be at least 1, got {samples}")
    device, dtype = x.device, generator_dtype(generator)
    xf = flatten_points(x).unsqueeze(1)
    n = xf.shape[0]
    per_points, per_chains = batch_shape(n, samples, batch_size)
    lse_w = torch.full((n,), -math.inf, dtype=torch.float64, device=device)
    lse_w2 = torch.full_like(lse_w, -math.inf)
    with evaluation_mode(generator):
        for start in range(0, n, per_points):
            rows = slice(start, min(n, start + per_points))
            for k0 in range(0, samples, per_chains):
                k = min(per_chains, samples - k0)
                z = torch.randn(rows.stop - rows.start, k, latent_dim, generator=rng, device=device, dtype=dtype)
                lw = gaussian_log_density(xf[rows], decode(generator, z), sigma)
                lse_w[rows] = torch.logaddexp(lse_w[rows], torch.logsumexp(lw, 1))
                lse_w2[rows] = torch.logaddexp(lse_w2[rows], torch.logsumexp(2 * lw, 1))
    return ImportanceResult(log_px=lse_w - math.log(samples), ess=torch.exp(2 * lse_w - lse_w2), samples=samples)
