"""f-GAN objectives: one per divergence; the critic optimum attains D_f; the saturating generator
loss follows grad D_f under the optimal critic; user-defined divergences get an objective."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats as st
import torch
from scipy import integrate

from occamgan.config import build_config, config_section
from occamgan.divergences import DIVERGENCES, divergence_from_f, get_divergence
from occamgan.objectives.base import OBJECTIVES
from occamgan.objectives.fgan import FGAN, fgan_name, register_fgan

BUILTIN = ["gan", "hellinger", "js", "kl", "neyman", "ns", "pearson", "reverse_kl"]


def test_every_divergence_has_an_fgan_objective():
    for name in BUILTIN:
        objective = OBJECTIVES.create(f"fgan_{name}")
        assert isinstance(objective, FGAN) and objective.divergence is get_divergence(name)
        assert objective.zero_sum and objective.has_discriminator


def test_fgan_names_pass_config_validation():
    cfg = build_config({"objective": {"name": "fgan_reverse_kl"}})
    assert cfg.objective.name == "fgan_reverse_kl"


# discrete p, q on four atoms, with batch means as expectations (atom i repeated count_i times)
P_COUNTS, Q_COUNTS = [1, 2, 3, 4], [4, 3, 2, 1]


def _batches(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    idx_p = torch.tensor([i for i, c in enumerate(P_COUNTS) for _ in range(c)])
    idx_q = torch.tensor([i for i, c in enumerate(Q_COUNTS) for _ in range(c)])
    return v[idx_p], v[idx_q]


@pytest.mark.parametrize("name", BUILTIN)
def test_critic_optimum_attains_the_divergence(name):
    div = get_divergence(name)
    objective = FGAN(div)
    p = torch.tensor(P_COUNTS, dtype=torch.float64) / 10
    q = torch.tensor(Q_COUNTS, dtype=torch.float64) / 10
    exact = float((q * div.f(p / q)).sum())
    v = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([v], lr=1, max_iter=500, tolerance_grad=1e-13, tolerance_change=1e-15,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = objective.discriminator_loss(*_batches(v))
        loss.backward()
        return loss

    opt.step(closure)
    bound = -float(objective.discriminator_loss(*_batches(v.detach())))
    assert bound == pytest.approx(exact, rel=1e-7)
    # the optimal critic output satisfies g_f(v) = f'(p / q) (Nowozin et al. Eq. 6)
    torch.testing.assert_close(div.activation(v.detach()), div.f_prime(p / q), rtol=1e-5, atol=1e-6)
    # any other critic gives a smaller bound
    worse = -float(objective.discriminator_loss(*_batches(v.detach() + 0.3)))
    assert worse < bound - 1e-4


# ----------------------------------------------------------------------------- gradient matching
MU, SD = 1.3, 1.0  # equal variances keep every divergence of the table finite (chi^2 included)
P, Q = st.norm(0.0, 1.0), st.norm(MU, SD)


def _inverse_activation(div, t: torch.Tensor) -> torch.Tensor:
    """v with g_f(v) = t: bisection without a graph, then one Newton step that carries dv/dt."""
    with torch.no_grad():
        lo, hi = torch.full_like(t, -200.0), torch.full_like(t, 200.0)
        for _ in range(200):
            mid = (lo + hi) / 2
            below = div.activation(mid) < t
            lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
        v0 = ((lo + hi) / 2).requires_grad_(True)
    with torch.enable_grad():
        g0 = div.activation(v0)
        (slope,) = torch.autograd.grad(g0.sum(), v0)
    return v0.detach() + (t - g0.detach()) / slope


def fgan_generator_gradient(div, n_nodes: int = 120) -> np.ndarray:
    """grad_(mu, s) of the saturating f-GAN loss -E_q f*(g_f(v*(x))), with the critic frozen at its
    optimum g_f(v*) = f'(p/q_theta0); Gauss-Hermite quadrature in x = mu + s z, autograd, float64."""
    z, w = np.polynomial.hermite_e.hermegauss(n_nodes)
    z, w = torch.tensor(z), torch.tensor(w) / math.sqrt(2 * math.pi)
    theta = torch.tensor([MU, SD], dtype=torch.float64, requires_grad=True)
    x = theta[0] + theta[1] * z
    log_ratio = -x.pow(2) / 2 + (x - MU).pow(2) / (2 * SD**2) + math.log(SD)  # frozen critic's view
    v = _inverse_activation(div, div.f_prime(torch.exp(log_ratio)))
    loss = -(w * div.conjugate_of_activation(v)).sum()  # FGAN.generator_loss with quadrature weights
    (grad,) = torch.autograd.grad(loss, theta)
    return grad.numpy()


def divergence_gradient(div) -> np.ndarray:
    """grad_(mu, s) D_f(p, q_theta) = int grad q_theta (f(u) - u f'(u)) dx by scipy quad."""

    def integrand(x: float, which: int) -> float:
        lq = Q.logpdf(x)
        q = math.exp(lq)
        if q == 0.0:
            return 0.0
        u = torch.tensor(math.exp(P.logpdf(x) - lq), dtype=torch.float64)
        k = float(div.f(u) - u * div.f_prime(u))
        dq = q * (x - MU) / SD**2 if which == 0 else q * ((x - MU) ** 2 / SD**3 - 1 / SD)
        return dq * k

    return np.array([integrate.quad(integrand, -40, 40, args=(i,), epsabs=1e-12, epsrel=1e-10,
                                    limit=500, points=[0.0, MU])[0] for i in range(2)])


@pytest.mark.parametrize("name", BUILTIN)
def test_saturating_generator_loss_follows_the_divergence(name):
    div = get_divergence(name)
    got, want = fgan_generator_gradient(div), divergence_gradient(div)
    assert np.linalg.norm(got - want) / np.linalg.norm(want) < 1e-6


# ----------------------------------------------------------------------------- user-defined
def test_register_fgan_for_a_user_divergence_trains_like_kl():
    name = "test_fgan_user_kl"
    div = DIVERGENCES.get(name) if name in DIVERGENCES else divergence_from_f(name, lambda u: u * torch.log(u))
    objective_name = fgan_name(div)
    if objective_name not in OBJECTIVES:
        assert register_fgan(div) == objective_name
    objective = OBJECTIVES.create(objective_name)
    assert name in DIVERGENCES
    # the logit activation: the loss at critic outputs v equals the KL f-GAN loss at outputs f'(e^v)
    # = v, i.e. both objectives coincide for KL
    gen = torch.Generator().manual_seed(0)
    d_real, d_fake = torch.randn(64, generator=gen, dtype=torch.float64), torch.randn(64, generator=gen, dtype=torch.float64)
    kl = FGAN(get_divergence("kl"))
    torch.testing.assert_close(objective.discriminator_loss(d_real, d_fake), kl.discriminator_loss(d_real, d_fake))
    torch.testing.assert_close(objective.generator_loss(None, d_fake), kl.generator_loss(None, d_fake))


# ----------------------------------------------------------------------------- training smoke test
@pytest.mark.parametrize("name", BUILTIN)
def test_fgan_objectives_train_a_few_steps(name):
    from occamgan.build import build_experiment

    cfg = build_config({
        "objective": {"name": f"fgan_{name}"},
        "data": {"name": "ring8", "n_samples": 256},
        "model": {"depth": 1, "width": 16},
        "train": {"batch_size": 32, "lr_g": 1e-3, "lr_d": 1e-3, "device": "cpu"},
    })
    exp = build_experiment(cfg)
    before = [p.detach().clone() for p in exp.game.generator.parameters()]
    sampler = exp.data.batch_sampler(32, seed=0)
    for _ in range(5):
        stats = exp.rule.step(exp.game, sampler.next)
    assert all(math.isfinite(float(v)) for v in stats.values())
    moved = [not torch.equal(a, b.detach()) for a, b in zip(before, exp.game.generator.parameters())]
    assert any(moved)
