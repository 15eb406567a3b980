"""DCGAN models: shapes and parameter counts at 16-128 px, no biases, DCGAN initialisation,
dropout slots, spectral norm, and one training step of every objective with them."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from occamgan.config import build_config
from occamgan.errors import ConfigError
from occamgan.models.base import build_models
from occamgan.models.dcgan import DCGANCritic, DCGANGenerator, count_parameters, dropout_slots
from occamgan.models.init import dcgan_init_
from occamgan.plugins import OBJECTIVES


def pair(size: int, channels: int = 3, **model):
    cfg = build_config({"model": {"name": "dcgan", "latent_dim": 100, **model}})
    return build_models(cfg, (channels, size, size), True)


def dcgan64_counts(nz: int, nc: int, f: int) -> tuple[int, int]:
    """Weights of DCGAN-64 by hand: 4x4 kernels (16 taps), BatchNorm scale + shift per channel."""
    g = 16 * (nz * 8 * f + 8 * f * 4 * f + 4 * f * 2 * f + 2 * f * f + f * nc) + 2 * (8 + 4 + 2 + 1) * f
    d = 16 * (nc * f + f * 2 * f + 2 * f * 4 * f + 4 * f * 8 * f + 8 * f) + 2 * (2 + 4 + 8) * f
    return g, d


@pytest.mark.parametrize("size", [16, 32, 64, 128])
def test_shapes_and_range(size):
    models = pair(size, channels=1, ngf=8, ndf=8)
    x = models.generator(torch.randn(3, 100))
    assert x.shape == (3, 1, size, size)
    assert x.abs().max() <= 1
    assert models.discriminator(x).shape == (3,)


def test_dcgan64_parameter_count_matches_the_architecture():
    models = pair(64)
    assert (count_parameters(models.generator), count_parameters(models.discriminator)) == dcgan64_counts(100, 3, 64)


def test_dcgan128_adds_a_1024_channel_stage():
    g = pair(128).generator
    assert g.net.block1[0].out_channels == 1024 and g.net.out[0].in_channels == 64


def test_no_layer_has_a_bias_except_batchnorm_shift():
    models = pair(32, ngf=8, ndf=8)
    for net in (models.generator, models.discriminator):
        for layer in net.modules():
            if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
                assert layer.bias is None


def test_critic_has_no_batchnorm_in_its_first_block():
    d = pair(64).discriminator
    assert not any(isinstance(m, nn.BatchNorm2d) for m in d.net.block1.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in d.modules()) == 3


def test_dcgan_initialisation_statistics():
    torch.manual_seed(0)
    g = pair(64).generator
    w = torch.cat([m.weight.flatten() for m in g.modules() if isinstance(m, nn.ConvTranspose2d)])
    assert abs(w.mean().item()) < 2e-4 and 0.0195 < w.std().item() < 0.0205
    bn = [m for m in g.modules() if isinstance(m, nn.BatchNorm2d)]
    scale = torch.cat([m.weight for m in bn])
    assert abs(scale.mean().item() - 1) < 0.005 and 0.015 < scale.std().item() < 0.025
    assert all(torch.equal(m.bias, torch.zeros_like(m.bias)) for m in bn)


def test_init_is_reproducible_with_a_generator():
    a = dcgan_init_(DCGANCritic(1, 32, 8), torch.Generator().manual_seed(3))
    b = dcgan_init_(DCGANCritic(1, 32, 8), torch.Generator().manual_seed(3))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize("size,slots", [(16, [2]), (32, [2, 3]), (64, [2, 3]), (128, [2, 3, 4])])
def test_dropout_slots_follow_blocks(size, slots):
    assert list(dropout_slots({16: 2, 32: 3, 64: 4, 128: 5}[size])) == slots
    models = pair(size, ngf=4, ndf=4, dropout=0.3)
    for net in (models.generator, models.discriminator):
        names = [n for n, m in net.net.named_children() if isinstance(m, nn.Dropout2d)]
        assert names == [f"dropout{i}" for i in slots]
        assert all(m.p == 0.3 for m in net.modules() if isinstance(m, nn.Dropout2d))


def test_parameter_names_do_not_depend_on_the_dropout_rate():
    a, b = pair(32, ngf=4, ndf=4), pair(32, ngf=4, ndf=4, dropout=0.5)
    assert a.generator.state_dict().keys() == b.generator.state_dict().keys()
    assert a.discriminator.state_dict().keys() == b.discriminator.state_dict().keys()
    assert not any(isinstance(m, nn.Dropout2d) for m in a.generator.modules())


def test_mc_dropout_masks_differ_in_eval_mode_with_dropout_active():
    g = DCGANGenerator(16, 1, 32, 8, dropout=0.5).eval()
    z = torch.randn(2, 16)
    with torch.no_grad():
        assert torch.equal(g(z), g(z))
        for m in g.modules():
            if isinstance(m, nn.Dropout2d):
                m.train()
        assert not torch.allclose(g(z), g(z))


def test_spectral_norm_bounds_every_critic_convolution():
    torch.manual_seed(1)
    d = pair(32, ngf=8, ndf=8, spectral_norm=True).discriminator
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 4 and all(hasattr(m, "parametrizations") for m in convs)
    x = torch.randn(4, 3, 32, 32)
    for _ in range(30):  # power iteration converges on the training forward passes
        d(x)
    d.eval()
    for m in convs:
        sigma = torch.linalg.matrix_norm(m.weight.flatten(1), ord=2).item()
        assert 0.95 < sigma < 1.05


def critic_input_gradient_norms(d_norm: str, scales: list[float]) -> list[float]:
    """Mean ||grad_x D(c x)|| of a 32-px critic (weights scaled up so GroupNorm's eps is
    negligible) at contrasts c of one batch."""
    torch.manual_seed(0)
    d = pair(32, channels=1, ngf=8, ndf=8, d_norm=d_norm).discriminator
    with torch.no_grad():
        for m in d.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.normal_(0.0, 0.3)
    x = torch.randn(8, 1, 32, 32)
    norms = []
    for c in scales:
        xc = (c * x).requires_grad_(True)
        (grad,) = torch.autograd.grad(d(xc).sum(), xc)
        norms.append(grad.flatten(1).norm(dim=1).mean().item())
    return norms


@pytest.mark.parametrize("d_norm", ["batch", "layer"])
def test_a_normalised_critic_has_input_gradients_inverse_to_contrast(d_norm):
    # D(c x) = D(x) for c > 0, so ||grad D(c x)|| = ||grad D(x)|| / c: low-contrast fakes meet a
    # steep critic, which is why WGAN-div's ||grad D||^6 at the fakes flattens such critics
    at_1, at_quarter, at_4 = critic_input_gradient_norms(d_norm, [1.0, 0.25, 4.0])
    assert at_quarter / at_1 == pytest.approx(4.0, rel=1e-3)
    assert at_4 / at_1 == pytest.approx(0.25, rel=1e-3)


def test_a_critic_without_normalisation_is_positively_homogeneous():
    # bias-free convolutions and LeakyReLU: D(c x) = c D(x), so grad D(c x) = grad D(x)
    at_1, at_quarter, at_4 = critic_input_gradient_norms("none", [1.0, 0.25, 4.0])
    assert at_quarter / at_1 == pytest.approx(1.0, rel=1e-5)
    assert at_4 / at_1 == pytest.approx(1.0, rel=1e-5)


@pytest.mark.parametrize("d_norm, layer, params", [("batch", nn.BatchNorm2d, 2), ("layer", nn.GroupNorm, 2), ("none", None, 0)])
def test_critic_normalisation_options(d_norm, layer, params):
    d = pair(32, ngf=8, ndf=8, d_norm=d_norm).discriminator
    norms = [m for m in d.modules() if isinstance(m, (nn.BatchNorm2d, nn.GroupNorm))]
    assert len(norms) == (2 if layer else 0) and all(type(m) is layer for m in norms)
    convs = sum(m.weight.numel() for m in d.modules() if isinstance(m, nn.Conv2d))
    assert count_parameters(d) == convs + params * (16 + 32)
    for m in norms:  # DCGAN initialisation of the scales, shift 0
        assert abs(m.weight.mean().item() - 1) < 0.02 and m.bias.abs().max() == 0


@pytest.mark.parametrize("size", [28, 48, 8])
def test_unsupported_sizes_are_config_errors(size):
    with pytest.raises(ConfigError, match="2\\^k >= 16"):
        pair(size)


def test_non_square_images_are_config_errors():
    cfg = build_config({"model": {"name": "dcgan"}})
    with pytest.raises(ConfigError, match="square"):
        build_models(cfg, (1, 16, 32), True)


# ---------------------------------------------------------------------- every objective trains
def one_step(objective: str, **extra) -> dict:
    from occamgan.build import build_experiment

    tree = {
        "seed": 0,
        "data": {"name": "digits", "image_size": 16},
        "model": {"name": "dcgan", "latent_dim": 8, "ngf": 4, "ndf": 4, **extra.pop("model", {})},
        "objective": {"name": objective},
        "train": {"batch_size": 16, "device": "cpu", **extra.pop("train", {"n_critic": 2})},
        "regularizers": extra.pop("regularizers", {}),
    }
    exp = build_experiment(build_config(tree))
    before = [p.detach().clone() for p in exp.game.generator_parameters()]
    sampler = exp.data.batch_sampler(16, seed=0)
    stats = exp.rule.step(exp.game, sampler.next)
    moved = any(not torch.equal(a, b) for a, b in zip(before, exp.game.generator_parameters()))
    return {"stats": stats, "moved": moved}


@pytest.mark.parametrize("objective", OBJECTIVES.names())
def test_every_objective_takes_a_step_with_dcgan(objective):
    out = one_step(objective)
    assert out["moved"]
    assert all(torch.isfinite(torch.as_tensor(v)).all() for k, v in out["stats"].items() if k.startswith("loss"))


@pytest.mark.parametrize("extra", [
    {"regularizers": {"sigma": 0.1, "grad_reg": 0.1, "r1": 1.0}},
    {"model": {"dropout": 0.2, "spectral_norm": True}, "train": {"n_mcd": 2}},
    {"train": {"sam_rho": 0.05}},
    {"model": {"d_norm": "layer"}},
    {"model": {"d_norm": "none", "dropout": 0.2}, "train": {"n_mcd": 2}},
])
def test_regularisers_strategies_and_critic_norms_work_with_dcgan(extra):
    out = one_step("wgan_div", **extra)
    assert out["moved"]
    assert all(torch.isfinite(torch.as_tensor(v)).all() for k, v in out["stats"].items() if k.startswith("loss"))


@pytest.mark.parametrize("rule", sorted(__import__("occamgan.plugins", fromlist=["UPDATE_RULES"]).UPDATE_RULES.names()))
def test_every_update_rule_takes_a_step_with_batchnorm_dcgan(rule):
    from occamgan.plugins import UPDATE_RULES

    zero_sum = getattr(UPDATE_RULES.get(rule), "requires_zero_sum", False)
    rule_keys = {"cg_max_iter": 5} if "cg_max_iter" in UPDATE_RULES.params(rule).model_fields else {}
    out = one_step("wgan" if zero_sum else "ns", train={"update": rule, **rule_keys})
    assert out["moved"]
    assert all(torch.isfinite(torch.as_tensor(v)).all() for k, v in out["stats"].items() if k.startswith("loss"))
