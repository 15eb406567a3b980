"""MC dropout: sampling helpers (bayes/mc_dropout.py) and the Game's averaging over n_mcd
stochastic passes (batched into one forward where the networks allow it)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from occamgan.bayes.mc_dropout import (
    dropout_layers,
    enable_mc_dropout,
    has_batch_coupling,
    has_dropout,
    mc_dropout,
)
from occamgan.config import build_config
from occamgan.sampling import sample_generator
from occamgan.game import Game
from occamgan.plugins import OBJECTIVES
from occamgan.regularizers import LikelihoodRelaxation


def bn_dropout_generator(p=0.5, latent=3):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(latent, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(p), nn.Linear(16, 2))


# ---------------------------------------------------------------- sampling helpers
def test_mc_mode_freezes_batchnorm_and_keeps_dropout_active():
    g = bn_dropout_generator()
    g.train()
    with mc_dropout(g):
        assert not g[1].training and g[3].training and not g.training
    assert all(m.training for m in g.modules())  # flags restored
    g.eval()
    enable_mc_dropout(g)
    assert not g[1].training and g[3].training
    assert has_dropout(g) and dropout_layers(g) == [g[3]]
    assert not has_dropout(nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.0)))


def test_mc_samples_differ_for_the_same_z_and_batchnorm_stays_frozen():
    g = bn_dropout_generator()
    g.train()
    g(torch.randn(64, 3))  # some running statistics
    stats = (g[1].running_mean.clone(), g[1].running_var.clone(), int(g[1].num_batches_tracked))
    z = torch.randn(1, 3).repeat(32, 1)
    with mc_dropout(g), torch.no_grad():
        x = g(z)
    # every sample has its own mask (rows can only coincide when two masks agree on the few
    # active ReLU units, which is rare)
    assert len(torch.unique(x, dim=0)) >= 24
    assert torch.equal(g[1].running_mean, stats[0]) and torch.equal(g[1].running_var, stats[1])
    assert int(g[1].num_batches_tracked) == stats[2]
    # BatchNorm used its running statistics: with inverted dropout E[mask * h] = h and a linear
    # last layer, the mean over masks is the eval-mode output
    with torch.no_grad():
        eval_out = g.eval()(z[:1])[0]
        with mc_dropout(g):
            mc_mean = g(z[:1].repeat(20000, 1)).mean(0)
    torch.testing.assert_close(mc_mean, eval_out, atol=0.03, rtol=0.03)


def test_mc_dropout_sampling_is_reproducible_and_leaves_the_rng_alone():
    g = bn_dropout_generator()
    g.eval()
    state = torch.random.get_rng_state()
    a = sample_generator(g, 100, 3, seed=5, mc_dropout=True)
    assert torch.equal(torch.random.get_rng_state(), state)
    b = sample_generator(g, 100, 3, seed=5, mc_dropout=True)
    c = sample_generator(g, 100, 3, seed=6, mc_dropout=True)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not g.training and not g[3].training  # modes restored
    # same latents as plain seeded sampling; only the masks differ
    z = torch.randn(100, 3, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        plain = g(z)
    assert not torch.allclose(a, plain)
    g_nodrop = nn.Sequential(*list(g)[:3], nn.Dropout(0.0), g[4])
    torch.testing.assert_close(sample_generator(g_nodrop.eval(), 100, 3, seed=5, mc_dropout=True), plain, rtol=0, atol=0)


# ---------------------------------------------------------------- Game averaging
class Counter(nn.Module):
    """Wraps a network; records the batch size of every call and the outputs."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net, self.sizes, self.outputs = net, [], []

    def forward(self, x):
        self.sizes.append(x.shape[0])
        out = self.net(x)
        self.outputs.append(out.detach().clone())
        return out


def game_with(n_mcd, objective="ns", p=0.3, g_bn=False, d_bn=False, regularizers=()):
    torch.manual_seed(0)
    g_layers = [nn.Linear(2, 16)] + ([nn.BatchNorm1d(16)] if g_bn else []) + [nn.ReLU(), nn.Dropout(p), nn.Linear(16, 2)]
    d_layers = [nn.Linear(2, 16)] + ([nn.BatchNorm1d(16)] if d_bn else []) + [nn.ReLU(), nn.Dropout(p), nn.Linear(16, 1)]
    obj = OBJECTIVES.create(objective)
    d = Counter(nn.Sequential(*d_layers)) if obj.has_discriminator else None
    return Game(Counter(nn.Sequential(*g_layers)), d, obj, latent_dim=2, regularizers=list(regularizers), n_mcd=n_mcd)


def data(n=10):
    gen = torch.Generator().manual_seed(3)
    return torch.randn(n, 2, generator=gen), torch.randn(n, 2, generator=gen)


def test_generator_passes_are_one_forward_with_fresh_masks():
    game = game_with(4)
    real, z = data()
    fakes = game.generate_passes(z, 4)
    assert game.generator.sizes == [40]
    chunks = fakes.detach().chunk(4)
    assert all(not torch.equal(chunks[i], chunks[j]) for i in range(4) for j in range(i))


def test_batchnorm_forces_separate_passes():
    game = game_with(3, g_bn=True, d_bn=True)
    real, z = data()
    assert has_batch_coupling(game.generator) and has_batch_coupling(game.discriminator)
    loss = game.generator_loss(real, game.generate(z), z)
    assert game.generator.sizes == [10, 10, 10]
    assert game.discriminator.sizes == [10, 10, 10]
    game.eval()  # BatchNorm in eval mode is per-sample: stacking is allowed again
    assert not has_batch_coupling(game.generator)
    assert torch.isfinite(loss)


def test_generator_loss_averages_per_pass_losses_of_a_batch_coupled_objective():
    """RGAN's loss uses batch means, so the mean of per-pass losses differs from the loss of the
    stacked batch; the Game must return the former."""
    n = 3
    game = game_with(n, objective="rgan")
    real, z = data()
    fake = game.generate(z)
    loss = game.generator_loss(real, fake, z)
    assert game.generator.sizes == [10, 20]  # pass 1 given, passes 2..3 in one forward
    assert game.discriminator.sizes == [30, 30]  # reals and fakes of all passes, stacked
    d_real = game.discriminator.outputs[0].view(n, -1)
    d_fake = game.discriminator.outputs[1].view(n, -1)
    per_pass = [game.objective.generator_loss(d_real[k], d_fake[k]) for k in range(n)]
    stacked = game.objective.generator_loss(d_real.flatten(), d_fake.flatten())
    assert loss.item() == pytest.approx(sum(per_pass).item() / n, rel=1e-6)
    assert abs(loss.item() - stacked.item()) > 1e-6
    # the given fake is pass 1 and the critic masks differ between passes
    torch.testing.assert_close(game.generator.outputs[0], fake.detach())
    assert not torch.equal(d_real[0], d_real[1])


def test_discriminator_loss_passes_and_the_generator_gets_no_graph():
    n = 4
    game = game_with(n, objective="rgan")
    real, z = data()
    with torch.no_grad():
        fake = game.generate(z)
    loss = game.discriminator_loss(real, fake, z)
    d_real = game.discriminator.outputs[0].view(n, -1)
    d_fake = game.discriminator.outputs[1].view(n, -1)
    expected = sum(game.objective.discriminator_loss(d_real[k], d_fake[k]) for k in range(n)) / n
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    loss.backward()
    assert all(p.grad is None for p in game.generator.parameters())
    assert all(p.grad is not None for p in game.discriminator.parameters())


@pytest.mark.parametrize("objective", ["ns", "rgan", "mmd", "wgan_gp"])
@pytest.mark.parametrize("batched", [True, False])
def test_identical_passes_give_the_single_pass_loss(objective, batched):
    """Without dropout or noise every pass is the same, so averaging must change nothing."""
    real, z = data()
    single = game_with(1, objective, p=0.0)
    multi = game_with(5, objective, p=0.0)
    multi.batch_mc_passes = batched
    if objective == "wgan_gp":  # random interpolation: compare the unpenalised part only
        single.objective.weight = multi.objective.weight = 0.0
    a = single.generator_loss(real, single.generate(z), z)
    b = multi.generator_loss(real, multi.generate(z), z)
    assert b.item() == pytest.approx(a.item(), rel=1e-5, abs=1e-7)
    la, lb = single.losses(real, z), multi.losses(real, z)
    for x, y in zip(la, lb):
        assert y.item() == pytest.approx(x.item(), rel=1e-5, abs=1e-7)
    if single.has_discriminator:
        a = single.discriminator_loss(real, single.generate(z).detach(), z)
        b = multi.discriminator_loss(real, multi.generate(z).detach(), z)
        assert b.item() == pytest.approx(a.item(), rel=1e-5, abs=1e-7)
    expected = [10, 40] if batched else [10] * 5  # pass 1 is the given fake
    assert multi.generator.sizes[:len(expected)] == expected


def test_losses_average_the_same_passes_for_both_players():
    n = 3
    game = game_with(n, objective="ns", regularizers=[LikelihoodRelaxation(0.1)])
    real, z = data()
    loss_d, loss_g = game.losses(real, z)
    assert game.generator.sizes == [30] and game.discriminator.sizes == [30, 30]
    d_real = game.discriminator.outputs[0].view(n, -1)
    d_fake = game.discriminator.outputs[1].view(n, -1)
    obj = game.objective
    exp_d = sum(obj.discriminator_loss(d_real[k], d_fake[k]) for k in range(n)) / n
    exp_g = sum(obj.generator_loss(None, d_fake[k]) for k in range(n)) / n
    assert loss_d.item() == pytest.approx(exp_d.item(), rel=1e-6)
    assert loss_g.item() == pytest.approx(exp_g.item(), rel=1e-6)


def test_mc_averaging_reduces_the_variance_of_the_loss():
    """Each pass is an unbiased draw; the n-pass mean has about 1/n of the single-pass variance."""
    real, z = data(32)
    values = {}
    for n in (1, 8):
        game = game_with(n, p=0.5)
        torch.manual_seed(1)
        with torch.no_grad():
            values[n] = torch.stack([game.generator_loss(real, game.generate(z), z) for _ in range(100)])
    ratio = values[1].var() / values[8].var()
    assert 4 < ratio < 16
    assert abs(values[1].mean() - values[8].mean()) < 4 * values[1].std() / 100 ** 0.5


def test_an_abandoned_sample_stream_leaks_no_mode():
    """Stopping early (e.g. a refusal after the first batch) leaves grad mode, the module's flags
    and the RNG as they were."""
    from occamgan.sampling import iter_samples

    g = bn_dropout_generator()
    g.train()
    rng = torch.random.get_rng_state()
    for mc in (False, True):
        stream = iter_samples(g, 10, 3, seed=1, mc_dropout=mc, batch=4)
        next(stream)
        assert torch.is_grad_enabled() and g.training and all(m.training for m in g.modules())
        assert torch.equal(torch.random.get_rng_state(), rng)
    # the latents do not depend on the cut; without dropout neither do the samples
    cut = torch.cat(list(iter_samples(g, 10, 3, seed=1, batch=4)))
    torch.testing.assert_close(cut, sample_generator(g, 10, 3, seed=1), rtol=1e-6, atol=1e-6)  # BLAS by batch size
    # MC-dropout masks follow one carried stream: reproducible for a given cut
    a, b = (torch.cat(list(iter_samples(g, 10, 3, seed=1, mc_dropout=True, batch=4))) for _ in range(2))
    assert torch.equal(a, b)
