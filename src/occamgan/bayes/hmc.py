"""Hamiltonian Monte Carlo in the latent z, batched over points x chains (Neal 2011, "MCMC using
Hamiltonian dynamics", Sec. 5.2-5.3; used inside AIS as in Wu, Burda, Salakhutdinov & Grosse
2017, "On the quantitative analysis of decoder-based generative models", Sec. 3 and App. A).

The target of one transition is the tempered posterior

    f_beta(z) = N(z | 0, I) p(x | z)^beta,   U(z) = -log f_beta(z),   grad log f = -z + beta grad log p(x|z),

sampled with an identity mass matrix: momentum r ~ N(0, I), L leapfrog steps of size eps, then a
Metropolis test on H = U + |r|^2 / 2, made independently for every chain (``torch.where``, no
host synchronisation). A proposal with a non-finite H is rejected.

The likelihood and its gradient at the current state are carried in :class:`HMCState`, so that a
transition at a new temperature costs exactly L generator forward + backward passes: f_beta at
the starting point is rebuilt from the cached log-likelihood for any beta.

Step size (:func:`adapt_step_size`): one eps per data point, shared by its K chains, adapted
after every transition by a multiplicative rule towards acceptance 0.65, the target of Wu et al.
(2017, App. A), who multiply by 1.02 above the target and 0.98 below. We feed the rule the mean
Metropolis acceptance probability of the point's chains (less noisy than one chain's 0/1
outcome), and the step size carries over from one temperature to the next, so it follows the
posterior as it sharpens. Adapting on the chains' own history makes each kernel depend on the
past, which strictly speaking voids the exact AIS identity; Wu et al. accept this, and the
tests against closed forms (tests/test_evidence.py) bound the effect.

Two choices of ours, both measured on the linear-Gaussian test case:

- Jitter: each transition uses eps * U(1 - j, 1 + j), j = 0.2 (Neal 2011, Sec. 5.4.2.2,
  recommends randomising eps): a fixed trajectory length can resonate with the posterior's
  period in some direction, and without jitter the AIS log-weight variance occasionally grew
  several-fold.
- 0.65 is the optimum as the dimension grows (Beskos et al. 2013). For a few latent dimensions
  it pushes eps close to the leapfrog's stability limit (eps / sd -> 2 in the tightest
  direction), where each leapfrog step nearly reflects z about the mean and log p(x | z) barely
  decorrelates: at P = 5 its integrated autocorrelation time was 7-11 transitions at target
  0.65 and 2-3 at target 0.9. Pass ``target_acceptance`` ~0.9 (to AIS and the evidence
  functions) for small P.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from .likelihood import log_prior

#: Wu et al. (2017, App. A): target acceptance and the multiplicative adaptation factor 1 +- rate
TARGET_ACCEPTANCE = 0.65
ADAPT_RATE = 0.02
#: each transition's step size is eps * U(1 - jitter, 1 + jitter)
JITTER = 0.2
STEP_SIZE_RANGE = (1e-5, 5.0)

LikelihoodFn = Callable[[Tensor], "tuple[Tensor, Tensor]"]


@dataclass
class HMCState:
    """Latents (n, K, P), their log-likelihood (n, K) float64 and its gradient in z (n, K, P)."""

    z: Tensor
    log_lik: Tensor
    grad_log_lik: Tensor


def initial_state(z: Tensor, likelihood: LikelihoodFn) -> HMCState:
    """The state at ``z``: one forward + backward through ``likelihood`` (z -> (log p(x|z), grad))."""
    ll, grad = likelihood(z)
    return HMCState(z, ll, grad)


def _grad_log_target(z: Tensor, grad_log_lik: Tensor, beta: float) -> Tensor:
    return beta * grad_log_lik - z


def _log_target(z: Tensor, log_lik: Tensor, beta: float) -> Tensor:
    return log_prior(z) + beta * log_lik


def leapfrog(state: HMCState, momentum: Tensor, beta: float, step_size: Tensor, steps: int,
             likelihood: LikelihoodFn) -> tuple[HMCState, Tensor]:
    """``steps`` leapfrog steps of size ``step_size`` (broadcast to (n, K, 1)) on -log f_beta from
    ``state`` with ``momentum``: returns the end state and the end momentum."""
    z, ll, grad = state.z, state.log_lik, state.grad_log_lik
    r = momentum + 0.5 * step_size * _grad_log_target(z, grad, beta)
    for i in range(steps):
        z = z + step_size * r
        ll, grad = likelihood(z)
        # a full momentum step between position steps, a half step at the end
        r = r + (step_size if i < steps - 1 else 0.5 * step_size) * _grad_log_target(z, grad, beta)
    return HMCState(z, ll, grad), r


def hmc_transition(state: HMCState, beta: float, step_size: Tensor, steps: int, likelihood: LikelihoodFn,
                   rng: torch.Generator, jitter: float = JITTER) -> tuple[HMCState, Tensor]:
    """One HMC transition leaving f_beta invariant, per chain: (new state, acceptance probability
    min(1, exp(-dH)) as an (n, K) float64 tensor, 0 where the proposal is not finite).

    ``step_size`` has one entry per point (n,), multiplied for this transition by a factor drawn
    from U(1 - jitter, 1 + jitter) per point. Momenta, factors and uniforms come from ``rng``."""
    z = state.z
    momentum = torch.randn(z.shape, generator=rng, device=z.device, dtype=z.dtype)
    eps = step_size.to(z.dtype).view(-1, 1, 1)
    if jitter > 0:
        eps = eps * (1.0 + jitter * (2.0 * torch.rand(eps.shape, generator=rng, device=z.device, dtype=z.dtype) - 1.0))
    proposal, r = leapfrog(state, momentum, beta, eps, steps, likelihood)
    h0 = -_log_target(z, state.log_lik, beta) + 0.5 * (momentum.double() ** 2).sum(-1)
    h1 = -_log_target(proposal.z, proposal.log_lik, beta) + 0.5 * (r.double() ** 2).sum(-1)
    log_ratio = h0 - h1
    log_ratio = torch.where(torch.isfinite(log_ratio), log_ratio, torch.full_like(log_ratio, -torch.inf))
    u = torch.rand(log_ratio.shape, generator=rng, device=z.device, dtype=torch.float64)
    accept = torch.log(u) < log_ratio
    new = HMCState(
        z=torch.where(accept.unsqueeze(-1), proposal.z, z),
        log_lik=torch.where(accept, proposal.log_lik, state.log_lik),
        grad_log_lik=torch.where(accept.unsqueeze(-1), proposal.grad_log_lik, state.grad_log_lik),
    )
    return new, torch.exp(log_ratio.clamp(max=0.0))


def adapt_step_size(step_size: Tensor, accept_prob: Tensor, target: float = TARGET_ACCEPTANCE,
                    rate: float = ADAPT_RATE, bounds: tuple[float, float] = STEP_SIZE_RANGE) -> Tensor:
    """eps * (1 + rate) where a point's mean acceptance over its chains exceeds ``target``,
    eps * (1 - rate) otherwise (Wu et al. 2017, App. A), kept within ``bounds``."""
    up = accept_prob.mean(-1) > target
    factor = torch.where(up, torch.full_like(step_size, 1.0 + rate), torch.full_like(step_size, 1.0 - rate))
    return (step_size * factor).clamp(*bounds)
