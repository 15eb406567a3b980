"""Annealed importance sampling of the evidence (Neal 2001, "Annealed importance sampling",
Sec. 2-3; for decoder-based generative models Wu, Burda, Salakhutdinov & Grosse 2017, Sec. 3;
docs/methods.md section 9).

Intermediate targets along the geometric path from the prior to the posterior,

    f_t(z) = N(z | 0, I) p(x | z)^beta_t,    0 = beta_0 < beta_1 < ... < beta_T = 1,

with z_0 ~ N(0, I), z_t from an HMC transition leaving f_t invariant, and the log-weight

    log w = sum_{t=1..T} (beta_t - beta_{t-1}) log p(x | z_{t-1})        (Neal 2001, eq. 3)

for each of K chains; log p^(x) = logmeanexp_k log w_k. E[w] = p(x), so log p^ is a stochastic
lower bound. The last transition (at beta_T) does not enter any weight and is skipped, so one run
costs 1 + (T - 1) L generator forward + backward passes over the batch of points x chains.

Reverse direction (for BDMC, Grosse, Ghahramani & Adams 2015, Sec. 4): started from exact
posterior samples, the chain is run along the same schedule backwards, beta from 1 to 0, and
accumulates log w = sum_t (beta_t - beta_{t-1}) log p(x | z) at the state before each transition
(at beta_{t-1}). Then E[1/w] = 1/p(x) and -logmeanexp_k(-log w_k) is a stochastic UPPER bound.

Schedules (:func:`annealing_schedule`): "sigmoid" (default, Wu et al. 2017, Sec. 3: beta_t =
s(delta (2t/T - 1)) with the logistic s, delta = 4, rescaled so beta_0 = 0 and beta_T = 1: dense
near both ends, where the bridge distributions change fastest), "linear" (t/T) and "geometric"
(beta_t = 10^(-4 (T - t)/(T - 1)) for t >= 1, after beta_0 = 0: dense near the prior), or any
explicit increasing sequence from 0 to 1. Step sizes follow :mod:`occamgan.bayes.hmc`.

Everything stays on the generator's device: the weights and acceptance sums are accumulated
there in float64 and the loop never reads a value back to the host.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import Tensor, nn

from .hmc import ADAPT_RATE, JITTER, TARGET_ACCEPTANCE, adapt_step_size, hmc_transition, initial_state
from .importance import batch_shape, logmeanexp
from .likelihood import evaluation_mode, flat_likelihood_and_grad, flatten_points, generator_dtype

SCHEDULES = ("sigmoid", "linear", "geometric")
SIGMOID_DELTA = 4.0
GEOMETRIC_FLOOR = 1e-4
DEFAULT_STEP_SIZE = 0.05

Progress = Any  # None, True (a tqdm bar of our own), a tqdm-like object with .update, or f(done, total)


def annealing_schedule(steps: int, schedule: str | Sequence[float] = "sigmoid") -> list[float]:
    """The inverse temperatures beta_0 = 0 < ... < beta_T = 1 (T = ``steps``) as Python floats.

    An explicit sequence is validated and returned (then ``steps`` must equal its length - 1)."""
    if not isinstance(schedule, str):
        betas = [float(b) for b in schedule]
        if len(betas) < 2 or betas[0] != 0.0 or betas[-1] != 1.0 or any(b1 < b0 for b0, b1 in zip(betas, betas[1:])):
            raise ValueError("schedule must be a non-decreasing sequence of inverse temperatures from 0 to 1")
        return betas
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if schedule == "linear":
        return [t / steps for t in range(steps + 1)]
    if schedule == "geometric":
        if steps == 1:
            return [0.0, 1.0]
        return [0.0] + [GEOMETRIC_FLOOR ** ((steps - t) / (steps - 1)) for t in range(1, steps + 1)]
    if schedule == "sigmoid":
        s = [1.0 / (1.0 + math.exp(-SIGMOID_DELTA * (2.0 * t / steps - 1.0))) for t in range(steps + 1)]
        return [0.0] + [(v - s[0]) / (s[-1] - s[0]) for v in s[1:-1]] + [1.0]
    raise ValueError(f"schedule must be one of {SCHEDULES} or a sequence of betas, got {schedule!r}")


@dataclass
class AISResult:
    """One AIS run over n points with K chains each.

    ``log_px``: the estimate per point (forward: logmeanexp of ``log_w``, a stochastic lower
    bound; reverse: -logmeanexp(-log_w), a stochastic upper bound), float64 (n,). ``z``: the final
    states (n, K, P) (approximate posterior samples after a forward run). ``step_size``: the final
    step size per point; ``acceptance``: the mean HMC acceptance probability per point."""

    log_px: Tensor
    log_w: Tensor
    z: Tensor
    step_size: Tensor
    acceptance: Tensor
    reverse: bool = False
    betas: list[float] = field(default_factory=list, repr=False)


@contextlib.contextmanager
def progress_reporter(progress: Progress, total: int) -> Iterator[Callable[[], None]]:
    """Within the block, a no-argument callable advancing ``progress`` by one annealing step out
    of ``total``; a bar made here (``progress=True``) is closed on exit, a caller's is not."""
    if progress is None or progress is False:
        yield lambda: None
        return
    if progress is True:
        from tqdm.auto import tqdm

        with tqdm(total=total, desc="AIS", unit="step") as bar:
            yield lambda: bar.update(1)
        return
    if hasattr(progress, "update"):
        if getattr(progress, "total", 0) is None:
            progress.total = total
        yield lambda: progress.update(1)
        return
    if not callable(progress):
        raise ValueError("progress must be None, True, a tqdm-like bar or a callable f(done, total)")
    done = [0]

    def advance() -> None:
        done[0] += 1
        progress(done[0], total)

    yield advance


def _anneal(generator: nn.Module, xf: Tensor, z: Tensor, betas: list[float], sigma: float, leapfrog: int,
            step_size: Tensor, rng: torch.Generator, advance: Callable[[], None], target: float,
            rate: float, jitter: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Run the chains ``z`` (n, K, P) along ``betas`` (either direction): (log_w, final z, final
    step size, mean acceptance). Weight increments |beta_t - beta_{t-1}| log p(x | z) are taken at
    the state before the transition at beta_t; none is needed after the last increment."""
    def likelihood(zz: Tensor) -> tuple[Tensor, Tensor]:
        return flat_likelihood_and_grad(generator, zz, xf, sigma)

    state = initial_state(z, likelihood)
    log_w = torch.zeros(z.shape[:2], dtype=torch.float64, device=z.device)
    accept_sum = torch.zeros(z.shape[0], dtype=torch.float64, device=z.device)
    transitions = len(betas) - 2
    for t in range(1, len(betas)):
        log_w = log_w + abs(betas[t] - betas[t - 1]) * state.log_lik
        if t < len(betas) - 1:
            state, accept = hmc_transition(state, betas[t], step_size, leapfrog, likelihood, rng, jitter)
            step_size = adapt_step_size(step_size, accept, target, rate)
            accept_sum = accept_sum + accept.mean(-1)
        advance()
    acceptance = accept_sum / transitions if transitions > 0 else torch.full_like(accept_sum, math.nan)
    return log_w, state.z, step_size, acceptance


def ais(generator: nn.Module, x: Tensor, *, latent_dim: int, sigma: float, chains: int, steps: int,
        leapfrog: int, rng: torch.Generator, schedule: str | Sequence[float] = "sigmoid",
        step_size: float | Tensor = DEFAULT_STEP_SIZE, z_init: Tensor | None = None, reverse: bool = False,
        batch_size: int | None = None, progress: Progress = None, target_acceptance: float = TARGET_ACCEPTANCE,
        adapt_rate: float = ADAPT_RATE, jitter: float = JITTER) -> AISResult:
    """AIS estimate of log p(x) for every point of ``x`` (n, ...) on the generator's device.

    Forward (default): K = ``chains`` chains per point start from the prior, drawn from ``rng``
    (a ``torch.Generator`` on x's device), and anneal along ``schedule`` with ``steps`` = T
    intermediate distributions and ``leapfrog`` = L steps per HMC transition. Reverse
    (``reverse=True``): the chains start at ``z_init`` ((n, P): all K chains at the point's exact
    posterior sample, or (n, K, P)) and anneal from beta = 1 to 0. ``step_size`` is the initial
    HMC step size, a float or one per point (n,). ``batch_size`` bounds points x chains per
    generator forward (a forward holds at least one point's K chains); None runs all at once."""
    if chains < 1 or leapfrog < 1:
        raise ValueError(f"chains and leapfrog must be at least 1, got {chains} and {leapfrog}")
    betas = annealing_schedule(steps, schedule)
    path = betas[::-1] if reverse else betas
    device, dtype = x.device, generator_dtype(generator)
    xf = flatten_points(x).unsqueeze(1)
    n = xf.shape[0]
    start_z = _start(z_init, n, chains, latent_dim, reverse, device, dtype)
    eps = torch.as_tensor(step_size, dtype=torch.float64, device=device).expand(n).clone()
    per_points, _ = batch_shape(n, chains, batch_size)
    total, parts = (len(betas) - 1) * math.ceil(n / per_points), []
    with evaluation_mode(generator), progress_reporter(progress, total) as advance:
        for lo in range(0, n, per_points):
            rows = slice(lo, min(n, lo + per_points))
            z0 = (start_z[rows] if start_z is not None
                  else torch.randn(rows.stop - lo, chains, latent_dim, generator=rng, device=device, dtype=dtype))
            parts.append(_anneal(generator, xf[rows], z0, path, sigma, leapfrog, eps[rows], rng, advance,
                                 target_acceptance, adapt_rate, jitter))
    log_w, z, eps_out, acceptance = (torch.cat(p) for p in zip(*parts))
    log_px = -logmeanexp(-log_w, -1) if reverse else logmeanexp(log_w, -1)
    return AISResult(log_px, log_w, z, eps_out, acceptance, reverse, betas)


def _start(z_init: Tensor | None, n: int, chains: int, latent_dim: int, reverse: bool, device: torch.device,
           dtype: torch.dtype) -> Tensor | None:
    """The reverse run's starting states (n, K, P); None for a forward run (drawn per batch)."""
    if not reverse:
        if z_init is not None:
            raise ValueError("z_init is only used by a reverse run (reverse=True)")
        return None
    if z_init is None:
        raise ValueError("a reverse AIS run needs z_init, exact posterior samples (n, latent_dim)")
    if tuple(z_init.shape) not in ((n, latent_dim), (n, chains, latent_dim)):
        raise ValueError(f"z_init must have shape ({n}, {latent_dim}) or ({n}, {chains}, {latent_dim}), "
                         f"got {tuple(z_init.shape)}")
    z = z_init.to(device=device, dtype=dtype)
    return z.unsqueeze(1).expand(n, chains, latent_dim).contiguous() if z.dim() == 2 else z
