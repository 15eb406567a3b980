"""Sharpness (diagnostics/hessian.py): Lanczos on Hessian-vector products against the dense
Hessian (torch.autograd.functional.hessian) of tiny games."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call

from occamgan.config import build_config
from occamgan.diagnostics.hessian import (
    data_batches,
    player_loss,
    sharpness,
    top_eigenvalues,
    top_hessian_eigenvalues,
)
from occamgan.game import Game
from occamgan.plugins import OBJECTIVES


@pytest.fixture(autouse=True)
def float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def tiny_game(objective="ns", dropout=0.0):
    torch.manual_seed(0)
    g = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Dropout(dropout), nn.Linear(4, 2))
    obj = OBJECTIVES.create(objective)
    d = nn.Sequential(nn.Linear(2, 5), nn.Tanh(), nn.Linear(5, 1)) if obj.has_discriminator else None
    return Game(g, d, obj, latent_dim=2)


def dense_top(module: nn.Module, loss_of_module, k: int) -> list[float]:
    """Top-k eigenvalues of the dense Hessian of loss_of_module(call) w.r.t. module's parameters."""
    names = [n for n, _ in module.named_parameters()]
    shapes = [p.shape for p in module.parameters()]
    flat0 = torch.cat([p.detach().flatten() for p in module.parameters()])

    def f(flat):
        chunks = flat.split([s.numel() for s in shapes])
        params = {n: c.view(s) for n, c, s in zip(names, chunks, shapes)}
        return loss_of_module(lambda x: functional_call(module, params, (x,)))

    h = torch.autograd.functional.hessian(f, flat0)
    return sorted(torch.linalg.eigvalsh(h).tolist(), reverse=True)[:k]


def batch(seed=1, n=16):
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))


def latents(game, n, seed):
    return game.sample_latent(n, generator=torch.Generator().manual_seed(seed))


def test_lanczos_matches_dense_on_a_quadratic():
    a = torch.randn(30, 30, generator=torch.Generator().manual_seed(0))
    h = a @ a.T / 30 - 0.5 * torch.eye(30)
    x = torch.randn(30, requires_grad=True)
    loss = 0.5 * x @ h @ x  # Hessian = h exactly, with negative and positive eigenvalues
    top = top_hessian_eigenvalues(loss, [x], k=4)
    expected = sorted(torch.linalg.eigvalsh(h).tolist(), reverse=True)[:4]
    np.testing.assert_allclose(top, expected, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("objective", ["ns", "rgan", "mmd"])
def test_generator_eigenvalues_match_the_dense_hessian(objective):
    game = tiny_game(objective)
    real = batch()
    k = 3
    got = top_eigenvalues(game, [real], k=k, player="g", seed=7)
    z = latents(game, len(real), 7)
    expected = dense_top(game.generator, lambda gen: game.objective_generator_loss(real, gen(z)), k)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-9)
    assert got[0] >= got[1] >= got[2]


def test_discriminator_eigenvalues_match_the_dense_hessian():
    game = tiny_game("ns")
    real = batch()
    got = top_eigenvalues(game, [real], k=2, player="d", seed=3)
    fake = game.generator(latents(game, len(real), 3)).detach()
    obj = game.objective
    expected = dense_top(game.discriminator,
                         lambda d: obj.discriminator_loss(d(real).reshape(-1), d(fake).reshape(-1)), 2)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-9)


def test_average_over_batches_and_reproducibility():
    game = tiny_game("ns")
    b1, b2 = batch(1), batch(2)
    one = top_eigenvalues(game, [b1], k=2, seed=0)
    two = top_eigenvalues(game, [b2], k=2, seed=1)  # batch i uses seed + i
    both = top_eigenvalues(game, [b1, b2], k=2, seed=0)
    np.testing.assert_allclose(both, (np.array(one) + np.array(two)) / 2, rtol=1e-9)
    assert top_eigenvalues(game, [b1, b2], k=2, seed=0) == both


def test_measurement_leaves_the_game_as_it_was():
    game = tiny_game("ns", dropout=0.5)
    game.train()
    ema = tiny_game("ns", dropout=0.5).generator.requires_grad_(False)
    with torch.no_grad():
        for p in ema.parameters():
            p.mul_(0.9)
    before = [p.detach().clone() for p in game.parameters()]
    values = top_eigenvalues(game, [batch()], k=1, generator=ema)
    assert all(m.training for m in game.modules())
    assert all(not p.requires_grad for p in ema.parameters())
    assert all(p.requires_grad for p in game.parameters())
    assert all(p.grad is None for p in game.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, game.parameters()))
    # dropout is off while measuring (eval mode), so the result is deterministic, and the EMA
    # generator (not the game's) was measured
    assert top_eigenvalues(game, [batch()], k=1, generator=ema) == values
    assert top_eigenvalues(game, [batch()], k=1) != values


def test_sharpness_metrics_and_errors():
    game = tiny_game("mmd")
    data = torch.randn(100, 2, generator=torch.Generator().manual_seed(0))
    out = sharpness(game, data, batch_size=20, n_batches=2, k=2)
    assert set(out) == {"top_eigenvalue", "top_eigenvalues"}
    assert out["top_eigenvalue"] == out["top_eigenvalues"][0]
    expected = top_eigenvalues(game, data_batches(data, 20, 2, 0), k=2)
    assert out["top_eigenvalues"] == expected
    with pytest.raises(ValueError, match="no discriminator"):
        sharpness(game, data, batch_size=20, players=("d",))
    with pytest.raises(ValueError, match="player"):
        player_loss(game, data[:4], data[:4], player="x")
    both = sharpness(tiny_game("ns"), data, batch_size=20, n_batches=1, players=("g", "d"))
    assert set(both) == {"top_eigenvalue", "top_eigenvalue_d"}


def test_dense_fallback_for_tiny_problems():
    x = torch.tensor([1.0, -2.0], requires_grad=True)
    loss = x[0] ** 2 * 1.5 + x[0] * x[1] + 2 * x[1] ** 2  # H = [[3, 1], [1, 4]]
    expected = sorted(np.linalg.eigvalsh(np.array([[3.0, 1.0], [1.0, 4.0]])).tolist(), reverse=True)
    np.testing.assert_allclose(top_hessian_eigenvalues(loss, [x], k=2), expected, rtol=1e-12)


def test_top_of_the_mean_hessian_matches_dense_and_bounds_the_mean_of_tops():
    game = tiny_game("mmd")
    b1, b2 = batch(1), batch(2)
    got = top_eigenvalues(game, [b1, b2], k=2, seed=4, reduce="hessian")
    z1, z2 = latents(game, 16, 4), latents(game, 16, 5)
    loss = lambda gen: 0.5 * (game.objective_generator_loss(b1, gen(z1)) + game.objective_generator_loss(b2, gen(z2)))  # noqa: E731
    np.testing.assert_allclose(got, dense_top(game.generator, loss, 2), rtol=1e-6, atol=1e-9)
    # lambda_max is convex: the mean of per-batch tops is at least the top of the mean
    tops = top_eigenvalues(game, [b1, b2], k=1, seed=4, reduce="eigenvalues")
    assert tops[0] >= got[0] - 1e-9
    with pytest.raises(ValueError, match="reduce"):
        top_eigenvalues(game, [b1], reduce="max")


def test_data_batches_are_epochs_without_replacement():
    data = torch.arange(200.0).view(200, 1)
    batches = data_batches(data, 50, 4, seed=0)
    assert [len(b) for b in batches] == [50] * 4
    assert sorted(torch.cat(batches).flatten().tolist()) == list(range(200))  # the set, once
    more = data_batches(data, 50, 6, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(batches, more))
    assert len(torch.cat(more[4:]).unique()) == 100
    assert [len(b) for b in data_batches(data[:30], 50, 2, seed=0)] == [30, 30]
