"""Generator losses beyond divergences (Jolicoeur-Martineau 2018): classic losses, the four
distance classes as one family, the author's 20 numeric ids, and their use in a Game."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from occamgan.config import ObjectiveConfig, build_config
from occamgan.divergences import implied_divergence
from occamgan.errors import ConfigError
from occamgan.objectives.base import GENERATOR_LOSSES
from occamgan.objectives.generator_losses import (
    DISTANCES,
    SPACES,
    DistanceGeneratorLoss,
    jm_alias,
    pseudo_huber,
    readable_name,
)

gen = torch.Generator().manual_seed(3)
D_REAL = torch.randn(16, generator=gen, dtype=torch.float64)
D_FAKE = torch.randn(16, generator=gen, dtype=torch.float64) - 1.0
Y = 0.7


def build(name: str, target_label: float = Y):
    return GENERATOR_LOSSES.get(name)(ObjectiveConfig(target_label=target_label))


# the author's formulas (GAN_losses_iter_beyond_divergence_min.py, loss_G 1..20), written out one by
# one in terms of the critic's output D and log D; an independent transcription of the id table
def _author(loss_id: int, dr, df, y):
    m = torch.mean
    lr, lf, ly = F.logsigmoid(dr), F.logsigmoid(df), math.log(y)
    hub = lambda a: torch.sqrt(a**2 + 1) - 1  # noqa: E731
    return {
        1: m((dr - df) ** 2), 2: m((df - y) ** 2), 3: (m(df) - m(dr)) ** 2, 4: (m(df) - y) ** 2,
        5: m(torch.abs(dr - df)), 6: m(torch.abs(df - y)), 7: torch.abs(m(df) - m(dr)), 8: torch.abs(m(df) - y),
        9: m(hub(dr - df)), 10: m(hub(df - y)), 11: hub(m(dr) - m(df)), 12: hub(m(df) - y),
        13: m((lr - lf) ** 2), 14: m((lf - ly) ** 2), 15: (m(lr) - m(lf)) ** 2, 16: (ly - m(lf)) ** 2,
        17: m(torch.abs(lr - lf)), 18: m(torch.abs(lf - ly)), 19: torch.abs(m(lr) - m(lf)), 20: torch.abs(ly - m(lf)),
    }[loss_id]


@pytest.mark.parametrize("loss_id", range(1, 21))
def test_numeric_alias_matches_the_author_formula(loss_id):
    loss = build(str(loss_id))
    d_real = D_REAL if loss.needs_real else None
    torch.testing.assert_close(loss(d_real, D_FAKE), _author(loss_id, D_REAL, D_FAKE, Y), rtol=1e-12, atol=1e-14)
    # the same loss under its readable name
    assert repr(build(readable_name(*jm_alias(loss_id)))) == repr(loss)


def test_alias_classes_follow_the_methods_table():
    # methods.md section 6: E(d) 1/5/9/13/17, E(d)_lab 2/6/10/14/18, d(E) 3/7/11/15/19, d(E)_lab 4/8/12/16/20
    classes = {("mean_of_distances", "real"): [1, 5, 9, 13, 17], ("mean_of_distances", "label"): [2, 6, 10, 14, 18],
               ("distance_of_means", "real"): [3, 7, 11, 15, 19], ("distance_of_means", "label"): [4, 8, 12, 16, 20]}
    distances = [("l2", "raw"), ("l1", "raw"), ("pseudo_huber", "raw"), ("l2", "log"), ("l1", "log")]
    for (reduction, reference), ids in classes.items():
        for loss_id, (distance, space) in zip(ids, distances):
            assert jm_alias(loss_id) == (reduction, reference, distance, space)
    with pytest.raises(ValueError):
        jm_alias(21)


@pytest.mark.parametrize("reduction", ["mean_of_distances", "distance_of_means"])
@pytest.mark.parametrize("distance", sorted(DISTANCES))
@pytest.mark.parametrize("space", sorted(SPACES))
def test_real_referenced_zero_at_match_label_not(reduction, distance, space):
    real_ref = DistanceGeneratorLoss(reduction, "real", distance, space)
    label_ref = DistanceGeneratorLoss(reduction, "label", distance, space, target_label=1.0)
    assert real_ref.needs_real and not label_ref.needs_real
    assert float(real_ref(D_FAKE.clone(), D_FAKE)) == 0.0
    assert float(label_ref(None, D_FAKE)) > 1e-3
    assert float(real_ref(D_REAL, D_FAKE)) > 1e-3


def test_all_pairs_variant():
    paired = DistanceGeneratorLoss("mean_of_distances", "real", "l2")
    all_pairs = DistanceGeneratorLoss("mean_of_distances", "real", "l2", paired=False)
    dr, df = torch.tensor([0.0, 2.0]), torch.tensor([2.0, 0.0])
    assert float(paired(dr, df)) == pytest.approx(4.0)
    assert float(all_pairs(dr, df)) == pytest.approx(2.0)  # (4 + 0 + 0 + 4) / 4
    with pytest.raises(ValueError, match="as many real as fake"):
        paired(dr, torch.zeros(3))
    assert float(all_pairs(dr, torch.zeros(3))) == pytest.approx(2.0)


def test_pseudo_huber_limits():
    small = torch.tensor([1e-3, -2e-3, 1e-2], dtype=torch.float64)
    torch.testing.assert_close(pseudo_huber(small), small**2 / 2, rtol=1e-4, atol=0)
    large = torch.tensor([1e3, -5e3, 2e4], dtype=torch.float64)
    gap = pseudo_huber(large) - (large.abs() - 1)
    assert bool((gap > 0).all()) and bool((gap < 1 / large.abs()).all())  # gap = 1/(sqrt(a^2+1)+|a|)


def test_gradients_flow_only_to_fake_outputs():
    loss = build("1")
    d_real = D_REAL.clone().requires_grad_(True)
    d_fake = D_FAKE.clone().requires_grad_(True)
    loss(d_real, d_fake).backward()
    assert d_real.grad is None and d_fake.grad is not None and d_fake.grad.abs().sum() > 0


def test_label_in_log_space_needs_a_positive_label():
    with pytest.raises(ValueError, match="target_label > 0"):
        build("14", target_label=0.0)
    with pytest.raises(ValueError, match="distance must be one of"):
        DistanceGeneratorLoss("mean_of_distances", "real", "huber")  # type: ignore[arg-type]


def test_classic_losses():
    d = D_FAKE
    expected = {
        "ns": F.softplus(-d).mean(), "minimax": -F.softplus(d).mean(), "lsgan": ((d - 1) ** 2).mean(),
        "wgan": -d.mean(), "hinge": -d.mean(),
        "rsgan": F.softplus(-(d - D_REAL)).mean(),
        "rgan": 0.5 * (F.softplus(-(d - D_REAL.mean())).mean() + F.softplus(D_REAL - d.mean()).mean()),
    }
    for name, value in expected.items():
        loss = build(name)
        torch.testing.assert_close(loss(D_REAL if loss.needs_real else None, d), value)
    assert build("rgan").needs_real and build("rsgan").needs_real and not build("ns").needs_real


def test_implied_divergences_of_per_sample_losses():
    # under the optimal GAN critic: wgan/hinge follow reverse KL; lsgan (E(d)_lab L2, y^ = 1) is no
    # divergence; its log-space version is one, and mode-seeking
    wgan = implied_divergence(build("wgan").per_sample)
    assert wgan.tail_exponents() == pytest.approx((2.0, 2.0), abs=1e-6)
    assert not implied_divergence(build("lsgan").per_sample).is_convex()
    assert not implied_divergence(build("2", target_label=1.0).per_sample).is_convex()
    log_l2 = implied_divergence(build("14", target_label=1.0).per_sample)
    assert log_l2.is_convex() and log_l2.behaviour() == "mode-seeking"
    assert build("1").per_sample is None


def test_config_accepts_names_and_rejects_typos():
    cfg = build_config({"objective": {"name": "hinge", "generator_loss": "13", "target_label": 0.5}})
    assert cfg.objective.generator_loss == "13"
    with pytest.raises(ConfigError, match="did you mean 'ns'"):
        build_config({"objective": {"generator_loss": "nss"}})


def test_game_uses_the_generator_loss():
    from occamgan.build import build_experiment

    cfg = build_config({
        "objective": {"name": "hinge", "generator_loss": "dist_mean_real_huber"},
        "data": {"name": "ring8", "n_samples": 128},
        "model": {"depth": 1, "width": 16},
        "train": {"batch_size": 16, "device": "cpu"},
    })
    exp = build_experiment(cfg)
    assert isinstance(exp.game.custom_generator_loss, DistanceGeneratorLoss) and not exp.game.zero_sum
    real = exp.data.batch_sampler(16, seed=0).next()
    fake = exp.game.generate(torch.randn(16, cfg.model.latent_dim))
    with torch.no_grad():
        want = pseudo_huber(exp.game.critic(real).mean() - exp.game.critic(fake).mean())
    torch.testing.assert_close(exp.game.generator_loss(real, fake).detach(), want)
    stats = exp.rule.step(exp.game, exp.data.batch_sampler(16, seed=1).next)
    assert all(math.isfinite(float(v)) for v in stats.values())
