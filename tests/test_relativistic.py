"""Relativistic objectives (objectives/relativistic.py): RSGAN, RaSGAN (rgan), RaLSGAN, RaHinge and
RpGAN on hand-computed values, their gradients, flags, and RpGAN with R1 + R2 in a Game."""
import math

import pytest
import torch
from torch import nn

from occamgan.objectives import OBJECTIVES
from occamgan.objectives.relativistic import (
    RELATIVISTIC,
    Relativistic,
    RelativisticPairing,
    RelativisticStandard,
    check_paired,
)

D64 = torch.float64
# chosen so that the means are round: mean d_r = 1, mean d_f = 0
DR = torch.tensor([2.0, 0.0, 1.0], dtype=D64)
DF = torch.tensor([0.0, 1.0, -1.0], dtype=D64)
sp = lambda x: math.log1p(math.exp(x))  # noqa: E731

# by hand. RSGAN/RpGAN: d_r - d_f = (2, -1, 2). Ra*: d_r - mean d_f = (2, 0, 1), d_f - mean d_r = (-1, 0, -2)
HAND = {
    # name: (L_D, L_G)
    "rsgan": ((2 * sp(-2) + sp(1)) / 3, (2 * sp(2) + sp(-1)) / 3),
    "rpgan": ((2 * sp(-2) + sp(1)) / 3, (2 * sp(2) + sp(-1)) / 3),
    # 1/2 [mean softplus(-(2, 0, 1)) + mean softplus((-1, 0, -2))], and roles swapped for L_G
    "rgan": ((sp(-2) + sp(0) + sp(-1)) / 3, (sp(1) + sp(0) + sp(2)) / 3),
    # L_D: mean (1, -1, 0)^2 + mean (0, 1, -1)^2; L_G: mean (-2, -1, -3)^2 + mean (3, 1, 2)^2
    "ralsgan": (4 / 3, 28 / 3),
    # L_D: mean relu(1 - (2, 0, 1)) + mean relu(1 + (-1, 0, -2)) = 1/3 + 1/3;
    # L_G: mean relu(1 - (-1, 0, -2)) + mean relu(1 + (2, 0, 1)) = 2 + 2
    "rahinge": (2 / 3, 4.0),
}


def make(name):
    return OBJECTIVES.get(name)(None)  # no options: the config section is ignored


def test_every_relativistic_objective_is_registered_and_tested():
    assert set(RELATIVISTIC) == set(HAND) and set(HAND) <= set(OBJECTIVES.names())


@pytest.mark.parametrize("name", sorted(HAND))
def test_losses_match_hand_computation(name):
    obj = make(name)
    d_loss, g_loss = HAND[name]
    assert obj.discriminator_loss(DR, DF).item() == pytest.approx(d_loss, rel=1e-12, abs=1e-15)
    assert obj.generator_loss(DR, DF).item() == pytest.approx(g_loss, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("name", sorted(HAND))
def test_flags_not_zero_sum_and_generator_reads_real(name):
    obj = make(name)
    assert isinstance(obj, Relativistic)
    assert obj.generator_needs_real and not obj.zero_sum and obj.has_discriminator
    with pytest.raises(ValueError, match="needs D"):
        obj.generator_loss(None, DF)


@pytest.mark.parametrize("name", sorted(HAND))
def test_generator_loss_does_not_train_through_real_and_is_not_minus_the_critic_loss(name):
    real = DR.clone().requires_grad_(True)
    fake = DF.clone().requires_grad_(True)
    obj = make(name)
    obj.generator_loss(real, fake).backward()
    assert real.grad is None and fake.grad is not None
    fake_d = DF.clone().requires_grad_(True)
    obj.discriminator_loss(DR, fake_d).backward()
    # zero-sum would mean grad_f L_G = -grad_f L_D
    assert not torch.allclose(fake.grad, -fake_d.grad, atol=1e-6)


def test_ralsgan_generator_gradient_flows_through_the_fake_mean():
    # L_G = mean (f - m_r - 1)^2 + mean (r - m_f + 1)^2; dL/df_j = 2/n (f_j - m_r - 1) - 2/n^2 sum_i (r_i - m_f + 1)
    # = 2/3 (-2, -1, -3) - 2/9 * 6
    fake = DF.clone().requires_grad_(True)
    make("ralsgan").generator_loss(DR, fake).backward()
    torch.testing.assert_close(fake.grad, torch.tensor([-8 / 3, -2.0, -10 / 3], dtype=D64), rtol=1e-12, atol=1e-14)


def test_rsgan_gradients_by_hand():
    # L_D = mean softplus(f_i - r_i): dL_D/dr_i = -sigmoid(f_i - r_i) / n; L_G = mean softplus(r_i - f_i):
    # dL_G/df_i = -sigmoid(r_i - f_i) / n
    real = DR.clone().requires_grad_(True)
    make("rsgan").discriminator_loss(real, DF).backward()
    torch.testing.assert_close(real.grad, -torch.sigmoid(DF - DR) / 3, rtol=1e-12, atol=1e-15)
    fake = DF.clone().requires_grad_(True)
    make("rsgan").generator_loss(DR, fake).backward()
    torch.testing.assert_close(fake.grad, -torch.sigmoid(DR - DF) / 3, rtol=1e-12, atol=1e-15)


def test_relativistic_losses_depend_only_on_differences():
    # shifting every logit by a constant changes no relativistic loss (the critic's level is free)
    for name in HAND:
        obj = make(name)
        assert obj.discriminator_loss(DR + 5.0, DF + 5.0).item() == pytest.approx(
            obj.discriminator_loss(DR, DF).item(), rel=1e-12)
        assert obj.generator_loss(DR - 3.0, DF - 3.0).item() == pytest.approx(
            obj.generator_loss(DR, DF).item(), rel=1e-12)


def test_paired_losses_need_equal_batches_average_ones_do_not():
    with pytest.raises(ValueError, match="as many real as fake"):
        make("rsgan").discriminator_loss(DR, DF[:2])
    with pytest.raises(ValueError, match="as many real as fake"):
        make("rpgan").generator_loss(DR, DF[:2])
    for name in ("rgan", "ralsgan", "rahinge"):
        assert math.isfinite(make(name).discriminator_loss(DR, DF[:2]).item())
    check_paired(DR, DF)  # no error


def test_rpgan_is_the_rsgan_loss():
    assert isinstance(make("rpgan"), RelativisticPairing) and isinstance(make("rpgan"), RelativisticStandard)
    gen = torch.Generator().manual_seed(0)
    r, f = torch.randn(64, generator=gen, dtype=D64), torch.randn(64, generator=gen, dtype=D64)
    assert torch.equal(make("rpgan").discriminator_loss(r, f), make("rsgan").discriminator_loss(r, f))
    assert torch.equal(make("rpgan").generator_loss(r, f), make("rsgan").generator_loss(r, f))


def test_equal_critic_outputs_give_log2_for_the_softplus_losses():
    zero = torch.zeros(5, dtype=D64)
    for name in ("rsgan", "rpgan", "rgan"):
        assert make(name).discriminator_loss(zero, zero).item() == pytest.approx(math.log(2), rel=1e-12)
    assert make("ralsgan").discriminator_loss(zero, zero).item() == pytest.approx(2.0, rel=1e-12)
    assert make("rahinge").discriminator_loss(zero, zero).item() == pytest.approx(2.0, rel=1e-12)


def test_rpgan_with_r1_and_r2_in_a_game():
    """L_D = E softplus(D(x~_i) - D(x_i)) + gamma1/2 E||grad D(x)||^2 + gamma2/2 E||grad D(x~)||^2; for
    a linear critic D(x) = w.x + b the input gradient is w everywhere."""
    from occamgan.game import Game
    from occamgan.regularizers import InputGradientPenalty

    lin = nn.Linear(2, 1).double()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[0.6, -0.8]], dtype=D64))  # ||w||^2 = 1
        lin.bias.fill_(0.1)
    critic = nn.Sequential(lin, nn.Flatten(0))
    generator = nn.Linear(2, 2).double()
    game = Game(generator, critic, make("rpgan"), latent_dim=2,
                regularizers=[InputGradientPenalty(0.5, at_real=True), InputGradientPenalty(2.0, at_real=False)])
    gen = torch.Generator().manual_seed(1)
    real, fake = torch.randn(8, 2, generator=gen, dtype=D64), torch.randn(8, 2, generator=gen, dtype=D64)
    loss = game.discriminator_loss(real, fake)
    with torch.no_grad():
        adversarial = nn.functional.softplus(critic(fake) - critic(real)).mean()
    assert loss.item() == pytest.approx(adversarial.item() + 0.5 / 2 * 1.0 + 2.0 / 2 * 1.0, rel=1e-12)
    assert not game.zero_sum
    # the generator loss reads D(x) (detached) and trains G
    g_loss = game.generator_loss(real, game.generate(torch.randn(8, 2, generator=gen, dtype=D64)))
    g_loss.backward()
    assert generator.weight.grad is not None and generator.weight.grad.abs().sum() > 0
