"""Occam regularisers (regularizers.py) inside the Game: likelihood relaxation, the gradient-norm
regulariser (double backward, checked by finite differences) and R1/R2 (hand computations)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from occamgan.config import build_config, config_section
from occamgan.game import Game
from occamgan.plugins import OBJECTIVES
from occamgan.regularizers import (
    GradientNormRegularizer,
    InputGradientPenalty,
    LikelihoodRelaxation,
    build_regularizers,
)


def objective(name: str):
    return OBJECTIVES.create(name)


class Recorder(nn.Module):
    """Wraps a critic and keeps every input it sees."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net, self.seen = net, []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return self.net(x).squeeze(-1)


def tiny_game(regularizers=(), name="ns", dtype=torch.float32, seed=0):
    torch.manual_seed(seed)
    g = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 2)).to(dtype)
    d = Recorder(nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 1)).to(dtype))
    return Game(g, d, objective(name), latent_dim=2, regularizers=list(regularizers))


def batch(n=8, dtype=torch.float32, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 2, generator=gen).to(dtype), torch.randn(n, 2, generator=gen).to(dtype)


# ---------------------------------------------------------------- configuration
def test_knobs_build_the_right_regularisers():
    assert build_regularizers(config_section("regularizers")) == []
    built = build_regularizers(config_section("regularizers", sigma=0.1, grad_reg=0.5, r1=2.0, r2=3.0))
    kinds = sorted(type(r).__name__ + (str(getattr(r, "at_real", "")) ) for r in built)
    assert kinds == ["GradientNormRegularizer", "InputGradientPenaltyFalse", "InputGradientPenaltyTrue", "LikelihoodRelaxation"]
    by_type = {type(r): r for r in built}
    assert by_type[LikelihoodRelaxation].sigma == 0.1 and by_type[GradientNormRegularizer].weight == 0.5


# ---------------------------------------------------------------- likelihood relaxation
@pytest.mark.parametrize("which", ["discriminator", "generator", "losses"])
def test_relaxation_noise_reaches_the_critic_in_both_losses(which):
    sigma = 0.3
    game = tiny_game([LikelihoodRelaxation(sigma)])
    real, z = batch(4000)
    fake = game.generate(z)
    critic = game.discriminator
    if which == "discriminator":
        game.discriminator_loss(real, fake.detach())
    elif which == "generator":
        game.generator_loss(real, fake)
    else:
        game.losses(real, z)
    fakes_seen = [x for x in critic.seen if not torch.equal(x, real)]
    if which != "generator":  # (the NS generator loss never looks at real data)
        assert any(torch.equal(x, real) for x in critic.seen)  # real data are never noised
    assert len(fakes_seen) == 1
    noise = fakes_seen[0] - fake.detach()
    assert noise.std().item() == pytest.approx(sigma, rel=0.05)
    assert abs(noise.mean().item()) < 0.02


def test_relaxed_fakes_keep_the_generator_gradient():
    game = tiny_game([LikelihoodRelaxation(0.2)])
    real, z = batch()
    game.generator_loss(real, game.generate(z)).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in game.generator.parameters())


def test_no_noise_when_sampling():
    game = tiny_game([LikelihoodRelaxation(0.5)])
    _, z = batch()
    torch.testing.assert_close(game.generate(z), game.generator(z), rtol=0, atol=0)


# ---------------------------------------------------------------- gradient regularisation
def penalised_loss(game: Game, real, z, lam: float) -> torch.Tensor:
    """L_G + lam ||dL_G/dpsi||^2 evaluated directly (a value, no graph through the penalty)."""
    loss = game.generator_loss(real, game.generate(z))
    grads = torch.autograd.grad(loss, list(game.generator.parameters()))
    return (loss + lam * sum(g.pow(2).sum() for g in grads)).detach()


def test_grad_reg_gradient_matches_finite_differences():
    lam, h = 0.7, 1e-5
    game = tiny_game([GradientNormRegularizer(lam)], dtype=torch.float64)
    plain = tiny_game([], dtype=torch.float64)
    real, z = batch(dtype=torch.float64)
    with game.frozen_discriminator():
        loss = game.generator_loss(real, game.generate(z))
    params = list(game.generator.parameters())
    analytic = torch.autograd.grad(loss, params)
    # the value is L + lam ||grad L||^2
    assert loss.item() == pytest.approx(penalised_loss(plain, real, z, lam).item(), rel=1e-12)
    for p, q, g in zip(params, plain.generator.parameters(), analytic):
        numeric = torch.zeros_like(p)
        for i in range(p.numel()):
            with torch.no_grad():
                q.view(-1)[i] += h
            up = penalised_loss(plain, real, z, lam)
            with torch.no_grad():
                q.view(-1)[i] -= 2 * h
            down = penalised_loss(plain, real, z, lam)
            with torch.no_grad():
                q.view(-1)[i] += h
            numeric.view(-1)[i] = (up - down) / (2 * h)
        torch.testing.assert_close(g, numeric, rtol=1e-6, atol=1e-8)


def test_grad_reg_changes_the_update_direction():
    real, z = batch(dtype=torch.float64)
    grads = {}
    for lam in (0.0, 1.0, 10.0):
        game = tiny_game([GradientNormRegularizer(lam)] if lam else [], dtype=torch.float64)
        with game.frozen_discriminator():
            game.generator_loss(real, game.generate(z)).backward()
        grads[lam] = torch.cat([p.grad.flatten() for p in game.generator.parameters()])
        assert all(p.grad is None for p in game.discriminator.parameters())
    plain, reg = grads[0.0], grads[10.0]
    cosine = torch.dot(plain, reg) / (plain.norm() * reg.norm())
    # a constant penalty (the authors' bug) would leave the gradient, hence the update, unchanged
    assert (reg - plain).norm() > 0.1 * plain.norm()
    assert cosine < 0.99
    # the change is lam * grad ||grad L||^2: linear in lam
    torch.testing.assert_close(reg - plain, 10 * (grads[1.0] - plain), rtol=1e-9, atol=1e-12)


def test_grad_reg_without_graph_returns_the_plain_loss():
    game = tiny_game([GradientNormRegularizer(1.0)])
    plain = tiny_game([])
    real, z = batch()
    with torch.no_grad():
        a = game.generator_loss(real, game.generate(z))
        b = plain.generator_loss(real, plain.generate(z))
    assert a.item() == pytest.approx(b.item(), rel=1e-6)


# ---------------------------------------------------------------- R1 / R2
def linear_critic(w, b):
    return lambda x: x @ w + b


def test_r1_r2_of_a_linear_critic_is_half_gamma_norm_w_squared():
    w, b = torch.tensor([0.5, -2.0, 1.5]), torch.tensor(0.3)
    real, fake = torch.randn(10, 3), torch.randn(10, 3)
    gamma = 4.0
    expected = 0.5 * gamma * w.pow(2).sum()
    for at_real in (True, False):
        pen = InputGradientPenalty(gamma, at_real).discriminator_penalty(linear_critic(w, b), real, fake)
        assert pen.item() == pytest.approx(expected.item(), rel=1e-6)


def test_r1_at_real_and_r2_at_fake_points_of_a_quadratic_critic():
    a = torch.tensor([1.0, -3.0])
    critic = lambda x: (a * x.pow(2)).sum(1)  # noqa: E731  grad = 2 a x
    real, fake = torch.randn(7, 2), 3 + torch.randn(7, 2)
    gamma = 2.5
    hand = lambda x: 0.5 * gamma * (2 * a * x).pow(2).sum(1).mean()  # noqa: E731
    r1 = InputGradientPenalty(gamma, at_real=True).discriminator_penalty(critic, real, fake)
    r2 = InputGradientPenalty(gamma, at_real=False).discriminator_penalty(critic, real, fake)
    assert r1.item() == pytest.approx(hand(real).item(), rel=1e-6)
    assert r2.item() == pytest.approx(hand(fake).item(), rel=1e-6)


@pytest.mark.parametrize("at_real", [True, False])
def test_r1_r2_enter_the_discriminator_loss_and_train_the_critic(at_real):
    gamma = 3.0
    real, fake = batch(16)
    losses, grads = {}, {}
    for g in (0.0, gamma):
        torch.manual_seed(0)
        d = nn.Linear(2, 1)
        game = Game(nn.Linear(2, 2), d, objective("ns"), latent_dim=2,
                    regularizers=[InputGradientPenalty(g, at_real)] if g else [])
        loss = game.discriminator_loss(real, fake)
        loss.backward()
        losses[g], grads[g] = loss.item(), d.weight.grad.clone()
    w = d.weight.detach()
    assert losses[gamma] - losses[0.0] == pytest.approx(0.5 * gamma * w.pow(2).sum().item(), rel=1e-5)
    torch.testing.assert_close(grads[gamma] - grads[0.0], gamma * w, rtol=1e-5, atol=1e-6)
