"""The shared critic pass (objectives/critic_pass.py): penalties at the loss's own real and fake
points read grad_x D from the loss's forward. Same values and gradients as recomputing them with
new critic forwards, one critic call per batch, detached penalty inputs, no requires_grad where
no penalty needs it."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from occamgan.config import build_config
from occamgan.game import Game
from occamgan.objectives.critic_pass import CriticPass, input_gradient
from occamgan.plugins import OBJECTIVES, UPDATE_RULES
from occamgan.regularizers import InputGradientPenalty, LikelihoodRelaxation, sum_terms

B = 6


class Counter(nn.Module):
    """Wraps a critic; records every input batch (size, whether it requires grad, a copy)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net, self.calls = net, []

    def forward(self, x):
        self.calls.append((x.shape[0], x.requires_grad, x.detach().clone()))
        return self.net(x)


def critic_net(p: float = 0.0, bn: bool = True) -> nn.Module:
    """A small DCGAN-like critic on 1 x 8 x 8 images (BatchNorm in training mode, Dropout2d)."""
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, stride=2, padding=1, bias=False),
        *([nn.BatchNorm2d(4)] if bn else []),
        nn.LeakyReLU(0.2),
        nn.Dropout2d(p),
        nn.Conv2d(4, 8, 3, stride=2, padding=1, bias=False),
        nn.Tanh(),
        nn.Flatten(),
        nn.Linear(8 * 2 * 2, 1),
    )


def make_game(objective="wgan_div", regularizers=(), n_mcd=1, p=0.0, bn=True, seed=0) -> Game:
    torch.manual_seed(seed)
    obj = OBJECTIVES.create(objective)
    generator = nn.Sequential(nn.Linear(3, 64), nn.Tanh(), nn.Unflatten(1, (1, 8, 8)))
    return Game(generator, Counter(critic_net(p, bn)), obj, latent_dim=3,
                regularizers=list(regularizers), n_mcd=n_mcd)


def data(seed=1):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(B, 1, 8, 8, generator=gen), torch.randn(B, 3, generator=gen)


def recomputing_loss(game: Game, real, fake):
    """L_D as the Game computed it before the shared pass: every penalty gets the plain critic,
    so each input gradient runs a new critic forward."""
    critic = lambda x: game.critic(x)  # noqa: E731  (not a CriticPass)
    loss = game.objective.discriminator_loss(critic(real), critic(fake))
    terms = [game.objective.penalty(critic, real, fake)]
    terms += [r.discriminator_penalty(critic, real, fake) for r in game.regularizers]
    extra = sum_terms(terms)
    return loss if extra is None else loss + extra


def critic_gradients(game: Game, loss):
    return torch.autograd.grad(loss, game.discriminator_parameters())


CASES = {
    "wgan_div": ("wgan_div", []),
    "ns+r1": ("ns", [InputGradientPenalty(3.0, at_real=True)]),
    "ns+r2": ("ns", [InputGradientPenalty(2.0, at_real=False)]),
    "wgan_div+r1+r2": ("wgan_div", [InputGradientPenalty(1.5, True), InputGradientPenalty(0.5, False)]),
}


# ---------------------------------------------------------------- same math as recomputing
@pytest.mark.parametrize("case", list(CASES))
def test_shared_pass_equals_recomputed_penalties(case):
    objective, regs = CASES[case]
    game = make_game(objective, regs)
    real, z = data()
    fake = game.generate(z).detach()
    new = game.discriminator_loss(real, fake)
    old = recomputing_loss(game, real, fake)
    # the penalty is not negligible, else equality would not test it
    plain = game.objective.discriminator_loss(game.critic(real), game.critic(fake))
    assert abs(new.item() - plain.item()) > 1e-3 * abs(plain.item()) + 1e-4
    assert new.item() == pytest.approx(old.item(), rel=1e-6)
    for a, b in zip(critic_gradients(game, new), critic_gradients(game, old)):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_stacked_mc_passes_equal_recomputed_penalties_on_the_stack():
    n = 3
    game = make_game("wgan_div", [InputGradientPenalty(2.0, True)], n_mcd=n, bn=False)
    real, z = data()
    fake = game.generate(z).detach()
    new = game.discriminator_loss(real, fake)  # no z: the passes repeat fake
    assert [c[0] for c in game.discriminator.calls] == [n * B, n * B]
    reals, fakes = real.repeat(n, 1, 1, 1), fake.repeat(n, 1, 1, 1)
    old = recomputing_loss(game, reals, fakes)  # dropout 0: every pass is the same
    assert new.item() == pytest.approx(old.item(), rel=1e-6)
    for a, b in zip(critic_gradients(game, new), critic_gradients(game, old)):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_penalty_sees_the_relaxed_fakes_the_loss_sees():
    game = make_game("wgan_div", [LikelihoodRelaxation(0.5)])
    real, z = data()
    fake = game.generate(z).detach()
    loss = game.discriminator_loss(real, fake)
    calls = game.discriminator.calls
    assert len(calls) == 2
    noised = calls[1][2]
    assert (noised - fake).std().item() == pytest.approx(0.5, rel=0.2)
    plain = make_game("wgan_div")  # same weights, no relaxation: recompute on the recorded fakes
    assert loss.item() == pytest.approx(recomputing_loss(plain, real, noised).item(), rel=1e-6)


# ---------------------------------------------------------------- forward counts
@pytest.mark.parametrize("case", list(CASES))
def test_critic_runs_once_per_real_and_once_per_fake_batch(case):
    objective, regs = CASES[case]
    game = make_game(objective, regs, p=0.3)
    real, z = data()
    bn = game.discriminator.net[1]
    game.discriminator_loss(real, game.generate(z).detach()).backward()
    calls = game.discriminator.calls
    assert [c[0] for c in calls] == [B, B]
    torch.testing.assert_close(calls[0][2], real, rtol=0, atol=0)
    assert int(bn.num_batches_tracked) == 2  # BatchNorm saw the real and the fake batch, once each
    points = set(game.objective.input_gradient_points).union(*(r.input_gradient_points for r in regs))
    assert (calls[0][1], calls[1][1]) == ("real" in points, "fake" in points)
    assert all(p.grad is not None for p in game.discriminator_parameters())


@pytest.mark.parametrize("objective", ["ns", "wgan", "wgan_gp"])
def test_no_requires_grad_overhead_without_penalties_at_the_batches(objective):
    game = make_game(objective)
    real, z = data()
    game.discriminator_loss(real, game.generate(z).detach())
    calls = game.discriminator.calls
    assert [(c[0], c[1]) for c in calls[:2]] == [(B, False), (B, False)]
    # WGAN-GP's interpolates need their own forward, with a gradient
    assert [(c[0], c[1]) for c in calls[2:]] == ([(B, True)] if objective == "wgan_gp" else [])


@pytest.mark.parametrize("sam_rho", [0.0, 0.5])
def test_alternating_step_with_wgan_div_runs_the_critic_twice_per_critic_step(sam_rho):
    n_critic = 3
    game = make_game("wgan_div")
    cfg = build_config({"train": {"n_critic": n_critic, "sam_rho": sam_rho, "sam_players": "d"}}).train
    rule = UPDATE_RULES.get("alternating")(game, cfg)
    gen = torch.Generator().manual_seed(2)
    rule.step(game, lambda: torch.randn(B, 1, 8, 8, generator=gen))
    evaluations = 2 if sam_rho else 1  # SAM evaluates the critic loss twice per step
    # real + fake per critic loss, then the generator step's D(fake)
    assert len(game.discriminator.calls) == 2 * evaluations * n_critic + 1
    assert all(c[0] == B for c in game.discriminator.calls)


# ---------------------------------------------------------------- detached penalty inputs
@pytest.mark.parametrize("objective", ["wgan_div", "wgan_gp"])
def test_penalties_see_detached_fakes_in_joint_losses(objective):
    """In Game.losses the fakes carry G's graph (competitive rules differentiate L_D w.r.t. G):
    the penalty at the fakes takes its own forward on the detached fakes, so it adds nothing to
    grad_G L_D, and grad_G L_D = -grad_G L_G as for the plain Wasserstein loss."""
    game = make_game(objective, bn=False)
    real, z = data()
    loss_d, loss_g = game.losses(real, z)
    calls = game.discriminator.calls
    # real (shared with the penalty for wgan_div), fake with graph, then the penalty's own forward
    assert [c[0] for c in calls] == [B, B, B]
    if objective == "wgan_div":
        assert calls[0][1] and not calls[2][2].requires_grad
        torch.testing.assert_close(calls[2][2], calls[1][2], rtol=0, atol=0)
    params = game.generator_parameters()
    g_d = torch.autograd.grad(loss_d, params, retain_graph=True)
    g_g = torch.autograd.grad(loss_g, params)
    for a, b in zip(g_d, g_g):
        torch.testing.assert_close(a, -b, rtol=1e-6, atol=1e-8)
    assert sum(g.abs().sum() for g in g_g) > 0


# ---------------------------------------------------------------- the pass itself
def test_pass_caches_gradients_and_recomputes_unknown_points():
    critic = Counter(nn.Sequential(nn.Flatten(), nn.Linear(64, 1)))
    real, fake = torch.randn(B, 1, 8, 8), torch.randn(B, 1, 8, 8)
    passed = CriticPass(lambda x: critic(x).reshape(-1), real, fake, grad_at=("real",))
    out, grad = input_gradient(passed, real)
    out2, grad2 = input_gradient(passed, passed.real)
    assert out2 is out and grad2 is grad and len(critic.calls) == 1
    w = critic.net[1].weight.detach().flatten()
    torch.testing.assert_close(grad, w.expand(B, -1), rtol=0, atol=0)  # linear critic: grad = w
    input_gradient(passed, fake)  # not declared: a new forward on the detached fakes
    input_gradient(passed, 0.5 * (real + fake))  # not a point of the pass at all
    assert len(critic.calls) == 3 and passed.d_fake is not None and len(critic.calls) == 4
    with pytest.raises(ValueError, match="grad_at"):
        CriticPass(critic, real, fake, grad_at=("mixed",))
