"""Sharpness (diagnostics/hessian.py): Lanczos (largest and smallest algebraic eigenvalues) and
power iteration (largest magnitude) on Hessian-vector products against the dense Hessian
(torch.autograd.functional.hessian) of tiny games."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call

from occamgan.config import build_config
from occamgan.data.base import BatchSampler
from occamgan.diagnostics.hessian import (
    METHODS,
    batch_eigenvalues,
    bottom_hessian_eigenvalues,
    data_batches,
    last_training_batch,
    largest_magnitude_eigenvalue,
    player_loss,
    power_iteration,
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


def dense_spectrum(module: nn.Module, loss_of_module) -> list[float]:
    """All eigenvalues (ascending) of the dense Hessian of loss_of_module(call) w.r.t. module's
    parameters."""
    names = [n for n, _ in module.named_parameters()]
    shapes = [p.shape for p in module.parameters()]
    flat0 = torch.cat([p.detach().flatten() for p in module.parameters()])

    def f(flat):
        chunks = flat.split([s.numel() for s in shapes])
        params = {n: c.view(s) for n, c, s in zip(names, chunks, shapes)}
        return loss_of_module(lambda x: functional_call(module, params, (x,)))

    h = torch.autograd.functional.hessian(f, flat0)
    return torch.linalg.eigvalsh(h).tolist()


def dense_top(module: nn.Module, loss_of_module, k: int) -> list[float]:
    """Top-k eigenvalues of the dense Hessian of loss_of_module(call) w.r.t. module's parameters."""
    return sorted(dense_spectrum(module, loss_of_module), reverse=True)[:k]


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


# ---------------------------------------------------------------- the authors' protocol and the bottom
def quadratic(h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(h.shape[0], generator=torch.Generator().manual_seed(5), requires_grad=True)
    return 0.5 * x @ h @ x, x  # Hessian = h exactly


def spectrum_matrix(eigenvalues, seed=0) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(len(eigenvalues), len(eigenvalues), generator=torch.Generator().manual_seed(seed)))
    return q @ torch.diag(torch.tensor(eigenvalues)) @ q.T


def test_power_iteration_finds_the_largest_magnitude_with_its_sign():
    # the most negative eigenvalue (-5) outweighs the largest (3): power iteration returns -5,
    # Lanczos' top returns 3, Lanczos' bottom returns -5 and the next
    values = [-5.0, -1.0, 0.2, 0.5, 1.0, 2.0, 3.0] + [0.1 * i for i in range(13)]
    loss, x = quadratic(spectrum_matrix(values))
    got = largest_magnitude_eigenvalue(loss, [x], iters=2000, tol=1e-14, seed=1)
    assert got.converged and got.iterations < 2000
    assert got.value == pytest.approx(-5.0, rel=1e-9)
    assert top_hessian_eigenvalues(loss, [x], k=1) == pytest.approx([3.0], rel=1e-9)
    np.testing.assert_allclose(bottom_hessian_eigenvalues(loss, [x], k=2), [-5.0, -1.0], rtol=1e-9)
    # positive-dominated: the same as the top eigenvalue
    loss, x = quadratic(spectrum_matrix([-1.0, 0.0, 0.5, 4.0, 1.5, 2.0, 0.3, 0.7]))
    assert largest_magnitude_eigenvalue(loss, [x], iters=2000, tol=1e-14).value == pytest.approx(4.0, rel=1e-9)


def test_power_iteration_reports_when_it_has_not_converged():
    # |lambda_2 / lambda_1| = 0.99: 20 steps (the authors' budget) are far from enough
    loss, x = quadratic(spectrum_matrix([1.0, 0.99, 0.5, 0.1, 0.0, -0.2]))
    op_result = largest_magnitude_eigenvalue(loss, [x], iters=20, tol=1e-12)
    assert not op_result.converged and op_result.iterations == 20
    assert 0.5 < op_result.value <= 1.0 + 1e-12  # a Rayleigh quotient: inside the spectrum
    with pytest.raises(ValueError, match="iters"):
        power_iteration(None, iters=0)


@pytest.mark.parametrize("objective", ["ns", "mmd"])
def test_largest_magnitude_and_smallest_match_the_dense_hessian(objective):
    game = tiny_game(objective)
    real = batch()
    z = latents(game, len(real), 7)
    spectrum = dense_spectrum(game.generator, lambda gen: game.objective_generator_loss(real, gen(z)))
    by_magnitude = max(spectrum, key=abs)
    info = {}
    power = batch_eigenvalues(game, [real], "power_abs", seed=7, power_iters=20000, power_tol=1e-15, info=info)
    assert info["power_converged"]
    np.testing.assert_allclose(power, [by_magnitude], rtol=1e-5)
    bottom = batch_eigenvalues(game, [real], "smallest", k=2, seed=7)
    np.testing.assert_allclose(bottom, spectrum[:2], rtol=1e-6, atol=1e-9)
    assert bottom[0] <= bottom[1]
    top = batch_eigenvalues(game, [real], "lanczos_top", k=2, seed=7)
    assert top == top_eigenvalues(game, [real], k=2, seed=7)
    with pytest.raises(ValueError, match="method"):
        batch_eigenvalues(game, [real], "largest")


def test_smallest_of_the_mean_hessian_matches_dense():
    game = tiny_game("ns")
    b1, b2 = batch(1), batch(2)
    got = batch_eigenvalues(game, [b1, b2], "smallest", k=1, seed=4, reduce="hessian")
    z1, z2 = latents(game, 16, 4), latents(game, 16, 5)
    loss = lambda gen: 0.5 * (game.objective_generator_loss(b1, gen(z1)) + game.objective_generator_loss(b2, gen(z2)))  # noqa: E731
    np.testing.assert_allclose(got, dense_spectrum(game.generator, loss)[:1], rtol=1e-6, atol=1e-9)


def test_sharpness_keys_per_method_and_the_one_batch_of_power_iteration():
    game = tiny_game("ns")
    data = torch.randn(100, 2, generator=torch.Generator().manual_seed(0))
    out = sharpness(game, data, batch_size=20, n_batches=2, k=2, seed=3, players=("g", "d"),
                    methods=("lanczos_top", "power_abs", "smallest"), power_iters=50)
    assert set(out) == {f"{key}{s}" for s in ("", "_d") for key in
                        ("top_eigenvalue", "top_eigenvalues", "bottom_eigenvalue", "bottom_eigenvalues",
                         "top_abs_eigenvalue", "top_abs_converged", "top_abs_iterations")}
    assert out["bottom_eigenvalue"] == out["bottom_eigenvalues"][0] <= out["bottom_eigenvalues"][1]
    assert out["bottom_eigenvalue"] <= out["top_eigenvalue"]
    # power iteration measured the first seeded batch only, with that batch's latents
    first = data_batches(data, 20, 2, 3)[0]
    expected = batch_eigenvalues(game, [first], "power_abs", seed=3, power_iters=50)
    assert out["top_abs_eigenvalue"] == expected[0]
    # or the batch it is given (the run's last training batch)
    last = data[:20]
    given = sharpness(game, data, batch_size=20, n_batches=2, seed=3, methods=("power_abs",), last_batch=last)
    assert given["top_abs_eigenvalue"] == batch_eigenvalues(game, [last], "power_abs", seed=3)[0]
    assert set(given) == {"top_abs_eigenvalue", "top_abs_converged", "top_abs_iterations"}
    assert set(METHODS) == {"lanczos_top", "power_abs", "smallest"}
    with pytest.raises(ValueError, match="methods"):
        sharpness(game, data, batch_size=20, methods=("largest",))


def test_last_training_batch_from_the_sampler_state():
    data = torch.arange(200.0).view(200, 1)
    sampler = BatchSampler(data, 50, seed=11)
    for steps in (1, 4, 5, 13):
        sampler = BatchSampler(data, 50, seed=11)
        for _ in range(steps):
            last = sampler.next()
        assert torch.equal(last_training_batch(data, sampler.state_dict(), 50), last)
    with pytest.raises(ValueError, match="no batch"):
        last_training_batch(data, BatchSampler(data, 50, seed=11).state_dict(), 50)
