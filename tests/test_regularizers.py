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


# ---------------------------------------------------------------- the authors' gradient regulariser
def adam_step(game: Game, real, z, lr=1e-2, eps=1e-8) -> list[torch.Tensor]:
    """The generator's parameters after one Adam step on its loss (the game is left unchanged)."""
    params = [p.detach().clone().requires_grad_(True) for p in game.generator.parameters()]
    originals = [p.detach().clone() for p in game.generator.parameters()]
    with game.frozen_discriminator():
        loss = game.generator_loss(real, game.generate(z))
    grads = torch.autograd.grad(loss, list(game.generator.parameters()))
    opt = torch.optim.Adam(params, lr=lr, betas=(0.5, 0.999), eps=eps)
    for p, g in zip(params, grads):
        p.grad = g
    opt.step()
    with torch.no_grad():
        for p, o in zip(game.generator.parameters(), originals):
            p.copy_(o)
    return [p.detach() for p in params]


def test_authors_grad_reg_is_a_constant_that_leaves_adams_update_unchanged():
    """grad_reg_authors: the penalty built from .grad without a graph (the authors' code) has the
    same value as the differentiable one but only doubles dL_G/dpsi: Adam's step is that of the
    plain loss, while the correct penalty changes it."""
    lam = 10.0
    real, z = batch(dtype=torch.float64)
    authors = tiny_game([GradientNormRegularizer(lam, authors=True)], dtype=torch.float64)
    correct = tiny_game([GradientNormRegularizer(lam)], dtype=torch.float64)
    plain = tiny_game([], dtype=torch.float64)
    losses, grads = {}, {}
    for name, game in (("authors", authors), ("correct", correct), ("plain", plain)):
        with game.frozen_discriminator():
            loss = game.generator_loss(real, game.generate(z))
        losses[name] = loss.item()
        grads[name] = torch.cat([g.flatten() for g in torch.autograd.grad(loss, list(game.generator.parameters()))])
    # the logged value is L + lam ||dL/dpsi||^2 either way
    assert losses["authors"] == pytest.approx(losses["correct"], rel=1e-12)
    assert losses["authors"] == pytest.approx(penalised_loss(plain, real, z, lam).item(), rel=1e-12)
    # the gradient is 2 dL/dpsi: the direction of the plain loss
    torch.testing.assert_close(grads["authors"], 2 * grads["plain"], rtol=1e-12, atol=1e-14)
    assert (grads["correct"] - grads["plain"]).norm() > 0.1 * grads["plain"].norm()
    # so Adam, invariant to rescaling the gradient, takes the plain loss's step: exactly with
    # eps = 0, and with its default eps = 1e-8 to within lr * eps / (2 |g|) per coordinate (the
    # first step is lr g / (|g| + eps))
    for a, b in zip(adam_step(authors, real, z, eps=0.0), adam_step(plain, real, z, eps=0.0)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-15)
    step_authors, step_plain, step_correct = adam_step(authors, real, z), adam_step(plain, real, z), adam_step(correct, real, z)
    bound = (1e-2 * 1e-8 / (2 * grads["plain"].abs())).split([p.numel() for p in plain.generator.parameters()])
    for a, b, c in zip(step_authors, step_plain, bound):
        assert ((a - b).abs().flatten() <= 1.01 * c + 1e-15).all()
    assert max((a - b).abs().max().item() for a, b in zip(step_correct, step_plain)) > 1e-4


def test_grad_reg_authors_knob():
    (reg,) = build_regularizers(config_section("regularizers", grad_reg=0.5, grad_reg_authors=True))
    assert isinstance(reg, GradientNormRegularizer) and reg.authors and reg.weight == 0.5
    (reg,) = build_regularizers(config_section("regularizers", grad_reg=0.5))
    assert not reg.authors
    # the switch alone turns nothing on
    assert build_regularizers(config_section("regularizers", grad_reg_authors=True)) == []


# ---------------------------------------------------------------- the authors' MMD sample gradient
def mmd_game(regularizers=(), dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    g = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 2)).to(dtype)
    return Game(g, None, objective("mmd"), latent_dim=2, regularizers=list(regularizers))


def sample_penalised(game: Game, real, z, lam: float) -> torch.Tensor:
    """MMD^2(real, G(z)) + lam * mean_i ||d MMD^2 / d x~_i||_2, written out (with its graph)."""
    fake = game.generate(z)
    loss = game.objective.sample_loss(real, fake)
    (grad,) = torch.autograd.grad(loss, [fake], create_graph=True)
    return loss + lam * grad.norm(dim=1).mean()


def test_sample_gradient_penalty_value_and_gradient():
    from occamgan.regularizers.sample_gradient import SampleGradientPenalty

    lam = 3.0
    real, z = batch(dtype=torch.float64)
    game = mmd_game([SampleGradientPenalty(lam)])
    loss = game.generator_loss(real, game.generate(z))
    expected = sample_penalised(game, real, z, lam)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-12)
    params = list(game.generator.parameters())
    got = torch.autograd.grad(loss, params)
    want = torch.autograd.grad(expected, params)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    # it is differentiated (double backward): the update direction changes
    plain = mmd_game([])
    base = torch.autograd.grad(plain.generator_loss(real, plain.generate(z)), list(plain.generator.parameters()))
    change = sum((a - b).pow(2).sum() for a, b in zip(got, base)).sqrt()
    assert change > 0.05 * sum(b.pow(2).sum() for b in base).sqrt()


def test_sample_gradient_penalty_in_training_paths():
    from occamgan.regularizers import LikelihoodRelaxation
    from occamgan.regularizers.sample_gradient import SampleGradientPenalty

    real, z = batch(dtype=torch.float64)
    reg = SampleGradientPenalty(2.0)
    # with relaxation the gradient is taken at the noised samples (same values: additive noise)
    torch.manual_seed(3)
    game = mmd_game([reg, LikelihoodRelaxation(0.1)])
    torch.manual_seed(4)
    loss = game.generator_loss(real, game.generate(z))
    assert torch.isfinite(loss) and loss.requires_grad
    assert reg._fake is None  # the graph is not kept past its loss
    # the Game's one-pass losses() (competitive rules) penalise L_G too
    _, loss_g = mmd_game([reg]).losses(real, z)
    assert loss_g.item() == pytest.approx(sample_penalised(mmd_game([]), real, z, 2.0).item(), rel=1e-12)
    # a critic step's detached fakes and a loss without a graph are never penalised
    critic_game = tiny_game([reg], dtype=torch.float64)
    critic_game.discriminator_loss(real, critic_game.generate(z).detach())
    assert reg._fake is None
    with torch.no_grad():
        assert reg.generator_penalty(critic_game.generator(z).sum(), critic_game.generator) is None
    # and the knob builds it
    built = build_regularizers(config_section("regularizers", grad_reg_samples=0.25))
    assert [type(r).__name__ for r in built] == ["SampleGradientPenalty"] and built[0].weight == 0.25


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
