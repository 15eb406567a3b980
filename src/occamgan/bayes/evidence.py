"""The evidence of a generator: log p(x | psi) of held-out data under the relaxed model, and its
BDMC sandwich on simulated data (Filippone & Linhard 2025, Sec. "Likelihood relaxation" and the
model-selection view; docs/methods.md sections 1 and 9).

    log p(x | psi) = log int N(x | G(z; psi), sigma^2 I_D) N(z | 0, I_P) dz

:func:`estimate_evidence` estimates it per data point by importance sampling with the prior as
proposal (``method="is"``, :mod:`.importance`) or by annealed importance sampling
(``method="ais"``, :mod:`.ais`); :func:`simulate_and_bound` runs bidirectional Monte Carlo
(:mod:`.bdmc`). These are pure functions of a generator module and data tensors; reading run
directories is the caller's business.

Reproducibility: every random number comes from a ``torch.Generator`` on the compute device
seeded with ``seed`` (the caller's global RNG is neither used nor advanced), so a seed gives the
same numbers on the same kind of device with the same ``batch_size`` (which fixes the order of
the draws). The generator is evaluated in eval mode, its training flags restored afterwards.

Bits per dimension (:func:`bits_per_dim`): for images stored as 8-bit values v in {0, ..., 255}
and mapped to x = v / 127.5 - 1 in [-1, 1] (the tanh range), a density p_x on x-space is a
density p_v(v) = p_x(x) / 127.5^D on v-space (the Jacobian of the map). Bits per dimension are

    bpd = -log2 p_v(v) / D = (-log p_x(x) / D + log 127.5) / log 2,

the figure the literature reports for 8-bit images, where it is read as the cost of the
dequantised data v + u, u ~ U[0, 1)^D. Ours is the density of the relaxed model at the given
(undithered) points, not a discrete likelihood, so it is comparable with those numbers only
under that reading.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from .ais import DEFAULT_STEP_SIZE, Progress, ais, annealing_schedule
from .bdmc import BDMCResult, bdmc, simulate
from .hmc import ADAPT_RATE, JITTER, TARGET_ACCEPTANCE
from ..pixels import PIXEL_SCALE  # x = v / 127.5 - 1, the project's one map to 8-bit pixels
from .importance import importance_sampling

METHODS = ("is", "ais")


def bits_per_dim(log_px: Tensor | float, dim: int) -> Tensor | float:
    """Bits per dimension of 8-bit data scaled to [-1, 1] from log p(x) in nats (see module doc)."""
    return (-log_px / dim + math.log(PIXEL_SCALE)) / math.log(2.0)


@dataclass
class EvidenceResult:
    """Per-point evidence ``log_px`` (float64, (n,), nats), its mean and standard error over the
    points, the ``method`` ("is" or "ais"), the relaxation width ``sigma``, the data dimension
    ``dim`` (D), every setting in ``protocol`` and sampler health in ``diagnostics``."""

    log_px: Tensor
    method: str
    sigma: float
    dim: int
    protocol: dict[str, Any] = field(default_factory=dict)
    diagnostics: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.log_px.shape[0])

    @property
    def mean(self) -> float:
        return float(self.log_px.mean())

    @property
    def stderr(self) -> float:
        """Standard error of the mean over points (sample std / sqrt n); nan for one point."""
        return float(self.log_px.std() / math.sqrt(self.n)) if self.n > 1 else math.nan

    @property
    def mean_per_dim(self) -> float:
        return self.mean / self.dim

    @property
    def bits_per_dim(self) -> float:
        """Mean bits/dim, meaningful for 8-bit images scaled to [-1, 1] (see module doc)."""
        return float(bits_per_dim(self.mean, self.dim))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (per-point values as a list)."""
        return {"method": self.method, "sigma": self.sigma, "mean": self.mean, "stderr": self.stderr,
                "dim": self.dim, "bits_per_dim": self.bits_per_dim, "log_px": self.log_px.tolist(),
                "protocol": dict(self.protocol), "diagnostics": dict(self.diagnostics)}


def _resolve(generator: nn.Module, device: torch.device | str | None) -> tuple[nn.Module, torch.device]:
    """The generator on the compute device: its own device by default; for another device a copy
    is moved there (the caller's module is never moved)."""
    own = next((p.device for p in generator.parameters()), torch.device("cpu"))
    if device is None or torch.device(device) == own:
        return generator, own
    device = torch.device(device)
    return copy.deepcopy(generator).to(device), device


def _check(sigma: float, latent_dim: int, chains: int, steps: int, leapfrog: int) -> None:
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    for name, value in (("latent_dim", latent_dim), ("chains", chains), ("steps", steps), ("leapfrog", leapfrog)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _rng(seed: int, device: torch.device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(int(seed))


def estimate_evidence(generator: nn.Module, x: Tensor, *, latent_dim: int, sigma: float, method: str = "ais",
                      chains: int = 16, steps: int = 1000, leapfrog: int = 10, seed: int = 0,
                      batch_size: int | None = None, device: torch.device | str | None = None,
                      progress: Progress = None, schedule: str | Sequence[float] = "sigmoid",
                      step_size: float = DEFAULT_STEP_SIZE, target_acceptance: float = TARGET_ACCEPTANCE,
                      adapt_rate: float = ADAPT_RATE, jitter: float = JITTER) -> EvidenceResult:
    """log p(x | psi) per point of ``x`` (n, ...) under N(x | G(z), sigma^2 I), z ~ N(0, I_P).

    ``method="ais"``: AIS with ``chains`` = K chains per point, ``steps`` = T intermediate
    distributions on ``schedule``, ``leapfrog`` = L steps per HMC transition of initial size
    ``step_size``, adapted towards ``target_acceptance`` (a stochastic lower bound; cost 1 +
    (T - 1) L generator forward + backward passes per batch). ``method="is"``: importance
    sampling from the prior with ``chains`` samples per point (``steps``, ``leapfrog`` unused).
    ``batch_size`` bounds the latents per generator forward (points x chains; None: all points at
    once); ``progress`` is None, True (a tqdm bar), a tqdm bar or ``f(done, total)`` over the
    annealing steps. See the module doc for determinism and the definition of bits/dim."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    _check(sigma, latent_dim, chains, steps, leapfrog)
    if x.shape[0] < 1:
        raise ValueError("x holds no data points")
    generator, device = _resolve(generator, device)
    rng = _rng(seed, device)
    xd = x.to(device)
    dim = int(xd[0].numel())
    protocol: dict[str, Any] = {"method": method, "sigma": float(sigma), "latent_dim": int(latent_dim),
                                "chains": int(chains), "seed": int(seed), "batch_size": batch_size,
                                "n_points": int(x.shape[0]), "dim": dim, "device": str(device),
                                "dtype": str(next((p.dtype for p in generator.parameters()), torch.float32))}
    if method == "is":
        res = importance_sampling(generator, xd, latent_dim=latent_dim, sigma=sigma, samples=chains, rng=rng,
                                  batch_size=batch_size)
        diagnostics = {"ess_mean": float(res.ess.mean()), "ess_min": float(res.ess.min())}
        return EvidenceResult(res.log_px, method, float(sigma), dim, protocol, diagnostics)
    protocol.update(steps=int(steps), leapfrog=int(leapfrog),
                    schedule=schedule if isinstance(schedule, str) else list(map(float, schedule)),
                    step_size=float(step_size), target_acceptance=float(target_acceptance),
                    adapt_rate=float(adapt_rate), jitter=float(jitter))
    res = ais(generator, xd, latent_dim=latent_dim, sigma=sigma, chains=chains, steps=steps, leapfrog=leapfrog,
              rng=rng, schedule=schedule, step_size=step_size, batch_size=batch_size, progress=progress,
              target_acceptance=target_acceptance, adapt_rate=adapt_rate, jitter=jitter)
    diagnostics = {"acceptance_mean": float(res.acceptance.mean()),
                   "step_size_final_mean": float(res.step_size.mean()),
                   "log_w_var_mean": float(res.log_w.var(-1).mean()) if chains > 1 else math.nan}
    return EvidenceResult(res.log_px, method, float(sigma), dim, protocol, diagnostics)


def simulate_and_bound(generator: nn.Module, n: int, *, latent_dim: int, sigma: float, chains: int = 16,
                       steps: int = 1000, leapfrog: int = 10, seed: int = 0, batch_size: int | None = None,
                       device: torch.device | str | None = None, progress: Progress = None,
                       schedule: str | Sequence[float] = "sigmoid", step_size: float = DEFAULT_STEP_SIZE,
                       target_acceptance: float = TARGET_ACCEPTANCE, adapt_rate: float = ADAPT_RATE,
                       jitter: float = JITTER) -> BDMCResult:
    """BDMC (Grosse et al. 2015) on ``n`` pairs simulated from the model: per-point stochastic
    lower (forward AIS) and upper (reverse AIS from the true latent) bounds on log p(x), with the
    AIS settings of :func:`estimate_evidence`. The gap is the AIS error bound at those settings."""
    _check(sigma, latent_dim, chains, steps, leapfrog)
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    annealing_schedule(steps, schedule)  # fail fast on a bad schedule
    generator, device = _resolve(generator, device)
    rng = _rng(seed, device)
    x, z = simulate(generator, n, latent_dim=latent_dim, sigma=sigma, rng=rng, device=device)
    res = bdmc(generator, x, z, latent_dim=latent_dim, sigma=sigma, chains=chains, steps=steps, leapfrog=leapfrog,
               rng=rng, schedule=schedule, step_size=step_size, batch_size=batch_size, progress=progress,
               target_acceptance=target_acceptance, adapt_rate=adapt_rate, jitter=jitter)
    res.protocol.update({"method": "bdmc", "sigma": float(sigma), "latent_dim": int(latent_dim), "n_points": int(n),
                         "chains": int(chains), "steps": int(steps), "leapfrog": int(leapfrog), "seed": int(seed),
                         "batch_size": batch_size, "device": str(device),
                         "schedule": schedule if isinstance(schedule, str) else list(map(float, schedule)),
                         "step_size": float(step_size), "target_acceptance": float(target_acceptance),
                         "adapt_rate": float(adapt_rate), "jitter": float(jitter)})
    return res
