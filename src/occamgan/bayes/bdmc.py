"""Bidirectional Monte Carlo: sandwiching the evidence on simulated data (Grosse, Ghahramani &
Adams 2015, "Sandwiching the marginal likelihood using bidirectional Monte Carlo", Sec. 3-4;
applied to decoders by Wu et al. 2017, Sec. 4; docs/methods.md section 9).

Simulate exact pairs from the model, z* ~ N(0, I_P) and x ~ N(G(z*), sigma^2 I). Then z* is an
exact sample of the posterior p(z | x), which is what reverse AIS must start from:

- forward AIS (prior -> posterior) gives log p^_lo with E[p^_lo] = p(x): a stochastic lower bound;
- reverse AIS (posterior -> prior, from z*) gives log p^_up = -logmeanexp(-log w_rev) with
  E[1/p^_up] = 1/p(x): a stochastic upper bound.

Both use the same schedule, chains and leapfrog steps, so their gap bounds the error of forward
AIS at those settings on data like the model's own (Grosse et al. 2015, Sec. 4). The reverse
chains start with the step size the forward run ended with (both are at beta = 1 there), since
the prescribed initial step size fits the prior, not the posterior.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from .ais import DEFAULT_STEP_SIZE, Progress, ais, annealing_schedule, progress_reporter
from .hmc import ADAPT_RATE, JITTER, TARGET_ACCEPTANCE
from .importance import batch_shape
from .likelihood import evaluation_mode, generator_dtype


@dataclass
class BDMCResult:
    """Per-point stochastic bounds (float64, (n,)) on log p(x) for simulated data ``x`` with
    their latents ``z`` (n, P); ``gap`` = upper - lower. Means over points are floats."""

    lower: Tensor
    upper: Tensor
    x: Tensor
    z: Tensor
    sigma: float
    protocol: dict[str, Any] = field(default_factory=dict)

    @property
    def gap(self) -> Tensor:
        return self.upper - self.lower

    @property
    def lower_mean(self) -> float:
        return float(self.lower.mean())

    @property
    def upper_mean(self) -> float:
        return float(self.upper.mean())

    @property
    def gap_mean(self) -> float:
        return float(self.gap.mean())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: the means, the per-point bounds as lists and the protocol."""
        return {"lower_mean": self.lower_mean, "upper_mean": self.upper_mean, "gap_mean": self.gap_mean,
                "lower": self.lower.tolist(), "upper": self.upper.tolist(), "sigma": self.sigma,
                "protocol": dict(self.protocol)}


@torch.no_grad()
def simulate(generator: nn.Module, n: int, *, latent_dim: int, sigma: float, rng: torch.Generator,
             device: torch.device) -> tuple[Tensor, Tensor]:
    """``n`` exact draws (x, z*) of the relaxed model: z* ~ N(0, I) in the generator's dtype,
    x = G(z*) + sigma * eps formed in float64 (so the noise is not rounded at small sigma)."""
    z = torch.randn(n, latent_dim, generator=rng, device=device, dtype=generator_dtype(generator))
    with evaluation_mode(generator):
        mean = generator(z).to(torch.float64)
    noise = torch.randn(mean.shape, generator=rng, device=device, dtype=torch.float64)
    return mean + sigma * noise, z


def bdmc(generator: nn.Module, x: Tensor, z_star: Tensor, *, latent_dim: int, sigma: float, chains: int,
         steps: int, leapfrog: int, rng: torch.Generator, schedule: str | Sequence[float] = "sigmoid",
         step_size: float = DEFAULT_STEP_SIZE, batch_size: int | None = None, progress: Progress = None,
         target_acceptance: float = TARGET_ACCEPTANCE, adapt_rate: float = ADAPT_RATE,
         jitter: float = JITTER) -> BDMCResult:
    """Forward and reverse AIS on exact pairs (``x``, ``z_star``) (n points; see module doc).

    ``progress`` advances over both runs' annealing steps (2 T per batch of points)."""
    n = x.shape[0]
    per_points, _ = batch_shape(n, chains, batch_size)
    total = 2 * (len(annealing_schedule(steps, schedule)) - 1) * math.ceil(n / per_points)
    with progress_reporter(progress, total) as advance:
        common = dict(latent_dim=latent_dim, sigma=sigma, chains=chains, steps=steps, leapfrog=leapfrog, rng=rng,
                      schedule=schedule, batch_size=batch_size, progress=lambda done, tot: advance(),
                      target_acceptance=target_acceptance, adapt_rate=adapt_rate, jitter=jitter)
        forward = ais(generator, x, step_size=step_size, **common)
        reverse = ais(generator, x, step_size=forward.step_size, z_init=z_star, reverse=True, **common)
    protocol = {"forward_acceptance": float(forward.acceptance.mean()),
                "reverse_acceptance": float(reverse.acceptance.mean())}
    return BDMCResult(lower=forward.log_px, upper=reverse.log_px, x=x, z=z_star, sigma=sigma, protocol=protocol)
