"""Every built-in objective on analytic cases, two-sided tolerances."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from occamgan.config import config_section
from occamgan.objectives import OBJECTIVES
from occamgan.objectives.mmd import mmd2, mmd2_unbiased

D64 = torch.float64
dr = torch.tensor([0.3, -1.2, 2.0, 0.5], dtype=D64)
df = torch.tensor([-0.7, 0.1, 1.5, -2.2], dtype=D64)
sp = lambda x: math.log1p(math.exp(x))  # noqa: E731


def mean(xs):
    return sum(xs) / len(xs)


def make(name, **kw):
    return OBJECTIVES.create(name, **kw)


def linear_critic(w, b=0.3):
    lin = nn.Linear(len(w), 1).double()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([w], dtype=D64))
        lin.bias.fill_(b)
    return lambda x: lin(x).squeeze(1)


def test_minimax_and_ns():
    d_loss = mean([sp(-r) for r in dr.tolist()]) + mean([sp(f) for f in df.tolist()])
    mm, ns = make("minimax"), make("ns")
    assert mm.discriminator_loss(dr, df).item() == pytest.approx(d_loss, rel=1e-12)
    assert ns.discriminator_loss(dr, df).item() == pytest.approx(d_loss, rel=1e-12)
    assert mm.generator_loss(None, df).item() == pytest.approx(-mean([sp(f) for f in df.tolist()]), rel=1e-12)
    assert ns.generator_loss(None, df).item() == pytest.approx(mean([sp(-f) for f in df.tolist()]), rel=1e-12)
    assert mm.zero_sum and not ns.zero_sum


def test_optimal_minimax_discriminator_value_is_minus_log4():
    # at D* = 1/2 everywhere (p = q) the loss is 2 log 2
    zero = torch.zeros(5, dtype=D64)
    assert make("minimax").discriminator_loss(zero, zero).item() == pytest.approx(2 * math.log(2), rel=1e-12)


def test_lsgan_and_hinge():
    ls = make("lsgan")
    assert ls.discriminator_loss(dr, df).item() == pytest.approx(
        mean([(r - 1) ** 2 for r in dr.tolist()]) + mean([f ** 2 for f in df.tolist()]), rel=1e-12)
    assert ls.generator_loss(None, df).item() == pytest.approx(mean([(f - 1) ** 2 for f in df.tolist()]), rel=1e-12)
    h = make("hinge")
    assert h.discriminator_loss(dr, df).item() == pytest.approx(
        mean([max(0, 1 - r) for r in dr.tolist()]) + mean([max(0, 1 + f) for f in df.tolist()]), rel=1e-12)
    assert h.generator_loss(None, df).item() == pytest.approx(-df.mean().item(), rel=1e-12)


def test_wasserstein_losses_and_clipping():
    w = make("wgan", clip=0.05)
    assert w.discriminator_loss(dr, df).item() == pytest.approx(df.mean().item() - dr.mean().item(), rel=1e-12)
    assert w.generator_loss(None, df).item() == pytest.approx(-df.mean().item(), rel=1e-12)
    net = nn.Linear(3, 1).double()
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[0.2, -0.01, -0.3]], dtype=D64))
    w.after_discriminator_step(net)
    assert net.weight.tolist() == [[0.05, -0.01, -0.05]]


def test_wgan_clipping_can_be_switched_off_in_the_config():
    from occamgan.config import build_config

    cfg = build_config(overrides=["objective.name=wgan", "objective.clip=null"])
    w = OBJECTIVES.get("wgan")(cfg.objective)
    net = nn.Linear(3, 1).double()
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[2.0, -0.01, -3.0]], dtype=D64))
    w.after_discriminator_step(net)
    assert net.weight.tolist() == [[2.0, -0.01, -3.0]]  # untouched
    assert w.discriminator_loss(dr, df).item() == pytest.approx(df.mean().item() - dr.mean().item(), rel=1e-12)
    assert w.zero_sum and w.penalty(None, dr, df) is None
    with pytest.raises(Exception, match="clip"):
        build_config(overrides=["objective.name=wgan", "objective.clip=0"])  # a bound must still be positive


@pytest.mark.parametrize("weights", [[0.6, -0.8], [3.0, 4.0], [0.1, 0.2, 0.2]])
def test_gradient_penalty_of_linear_critic(weights):
    """grad_x D = w everywhere, so the GP is lambda (||w|| - 1)^2 whatever the interpolates."""
    obj = make("wgan_gp", gp_weight=10.0)
    d = len(weights)
    real, fake = torch.randn(16, d, dtype=D64), torch.randn(16, d, dtype=D64) + 3
    norm = math.sqrt(sum(x * x for x in weights))
    gp = obj.penalty(linear_critic(weights), real, fake)
    assert gp.item() == pytest.approx(10.0 * (norm - 1) ** 2, rel=1e-10, abs=1e-12)


def test_gradient_penalty_interpolates_once_per_sample():
    """For D(x) = 0.5 ||x||^2, grad = x; with real = 0 and fake = 1 (all pixels) the interpolate
    is (1 - a) * 1: the norm must be (1 - a) sqrt(dim) with one a per sample."""
    obj = make("wgan_gp", gp_weight=1.0)
    real, fake = torch.zeros(4000, 1, 3, 3, dtype=D64), torch.ones(4000, 1, 3, 3, dtype=D64)
    torch.manual_seed(0)
    gp = obj.penalty(lambda x: 0.5 * x.flatten(1).pow(2).sum(1), real, fake).item()
    # E[((1 - a) 3 - 1)^2] for a ~ U(0, 1): E[(3u - 1)^2] = 3 - 3 + 1 = 1 with u ~ U(0, 1)
    assert gp == pytest.approx(1.0, rel=0.05)


@pytest.mark.parametrize("k, p", [(2.0, 6.0), (1.0, 2.0), (0.5, 3.0)])
def test_wgan_div_penalty_of_linear_critic(k, p):
    obj = make("wgan_div", div_k=k, div_p=p)
    w = [0.7, -1.1]
    norm = math.hypot(*w)
    pen = obj.penalty(linear_critic(w), torch.randn(8, 2, dtype=D64), torch.randn(8, 2, dtype=D64))
    assert pen.item() == pytest.approx(k * norm ** p, rel=1e-10)


def test_penalties_train_the_critic():
    lin = nn.Linear(2, 1).double()
    critic = lambda x: lin(x).squeeze(1)  # noqa: E731
    for name in ["wgan_gp", "wgan_div"]:
        lin.zero_grad()
        make(name).penalty(critic, torch.randn(8, 2, dtype=D64), torch.randn(8, 2, dtype=D64)).backward()
        assert lin.weight.grad is not None and lin.weight.grad.abs().sum() > 0


def test_relativistic_average():
    obj = make("rgan")
    mr, mf = dr.mean().item(), df.mean().item()
    d_loss = 0.5 * (mean([sp(-(r - mf)) for r in dr.tolist()]) + mean([sp(f - mr) for f in df.tolist()]))
    g_loss = 0.5 * (mean([sp(-(f - mr)) for f in df.tolist()]) + mean([sp(r - mf) for r in dr.tolist()]))
    assert obj.discriminator_loss(dr, df).item() == pytest.approx(d_loss, rel=1e-12)
    assert obj.generator_loss(dr, df).item() == pytest.approx(g_loss, rel=1e-12)
    assert obj.generator_needs_real


def test_relativistic_generator_loss_does_not_train_through_real():
    real_logits = dr.clone().requires_grad_(True)
    fake_logits = df.clone().requires_grad_(True)
    make("rgan").generator_loss(real_logits, fake_logits).backward()
    assert real_logits.grad is None and fake_logits.grad is not None


def test_mmd_identical_sets_is_zero():
    x = torch.randn(50, 2, dtype=D64)
    assert mmd2(x, x.clone(), config_section("objective", name="mmd").mmd_bandwidths).item() == pytest.approx(0.0, abs=1e-12)


def test_mmd_matches_hand_computation():
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0]], dtype=D64)
    y = torch.tensor([[0.0, 2.0]], dtype=D64)
    lam = [1.0, 0.1]
    k = lambda sq: sum(math.exp(-l * sq) for l in lam)  # noqa: E731, E741
    # K(x,x') over all 4 pairs: distances^2 0, 1, 1, 0; K(y,y) = k(0); K(x,y): 4, 5
    expected = (2 * k(0) + 2 * k(1)) / 4 + k(0) - 2 * (k(4) + k(5)) / 2
    assert mmd2(x, y, lam).item() == pytest.approx(expected, rel=1e-12)


def test_unbiased_mmd_matches_hand_computation_and_differs_from_biased_by_the_diagonals():
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0]], dtype=D64)
    y = torch.tensor([[0.0, 2.0], [0.0, 0.0], [3.0, 0.0]], dtype=D64)
    lam = [1.0, 0.1]
    k = lambda sq: sum(math.exp(-l * sq) for l in lam)  # noqa: E731, E741
    # off-diagonal pairs only: x: one distance^2 1; y: 4, 13, 9 (each twice); cross: 4, 0, 9, 5, 1, 4
    expected = k(1) + (k(4) + k(13) + k(9)) / 3 - 2 * (k(4) + k(0) + k(9) + k(5) + k(1) + k(4)) / 6
    assert mmd2_unbiased(x, y, lam).item() == pytest.approx(expected, rel=1e-12)
    # V minus U: the diagonals k(0)/n + k(0)/m, less the within-set means rescaled by 1/n and 1/m
    biased = mmd2(x, y, lam).item()
    assert biased - expected == pytest.approx(k(0) / 2 - k(1) / 2 + k(0) / 3 - (k(4) + k(13) + k(9)) / 9, rel=1e-12)


def test_unbiased_mmd_averages_to_zero_on_equal_distributions_where_biased_does_not():
    gen = torch.Generator().manual_seed(0)
    lam = [1.0, 0.1]
    u, v = [], []
    for _ in range(400):
        x, y = torch.randn(8, 2, generator=gen, dtype=D64), torch.randn(8, 2, generator=gen, dtype=D64)
        u.append(mmd2_unbiased(x, y, lam).item())
        v.append(mmd2(x, y, lam).item())
    u, v = torch.tensor(u), torch.tensor(v)
    assert abs(u.mean().item()) < 3 * u.std().item() / 20  # within 3 standard errors of 0
    assert v.mean().item() > 10 * v.std().item() / 20  # the V-statistic's positive bias


def test_mmd_objective_uses_the_configured_estimator():
    x, y = torch.randn(5, 2, dtype=D64), torch.randn(4, 2, dtype=D64)
    obj = make("mmd", mmd_unbiased=True)
    assert obj.sample_loss(x, y).item() == pytest.approx(mmd2_unbiased(x, y, config_section("objective", name="mmd").mmd_bandwidths).item(), rel=1e-12)


def test_mmd_objective_has_no_critic_and_gradients_are_finite_at_coincident_points():
    obj = make("mmd")
    assert not obj.has_discriminator
    fake = torch.zeros(4, 2, requires_grad=True)
    obj.sample_loss(torch.randn(6, 2), fake).backward()
    assert torch.isfinite(fake.grad).all()


def test_every_objective_is_registered():
    assert set(["minimax", "ns", "lsgan", "hinge", "wgan", "wgan_gp", "wgan_div", "rgan", "mmd",
                "rsgan", "ralsgan", "rahinge", "rpgan"]) <= set(OBJECTIVES.names())
