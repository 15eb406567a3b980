"""Generator losses beyond divergences (Jolicoeur-Martineau 2018): classic losses, the four
distance classes as one family, the author's 20 numeric ids (1-12 on sigmoid probabilities, 13-20
on log-sigmoid, as her sigmoid critic has them), the relativistic losses, and their use in a Game."""
from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from occamgan.config import build_config
from occamgan.divergences import FDivergence, implied_divergence
from occamgan.errors import ConfigError
from occamgan.objectives.base import GENERATOR_LOSSES
from occamgan.objectives.generator_losses import (
    DISTANCES,
    SPACES,
    DistanceGeneratorLoss,
    ObjectiveGeneratorLoss,
    jm_alias,
    pseudo_huber,
    readable_name,
)
from occamgan.objectives.relativistic import RELATIVISTIC

gen = torch.Generator().manual_seed(3)
D_REAL = torch.randn(16, generator=gen, dtype=torch.float64)
D_FAKE = torch.randn(16, generator=gen, dtype=torch.float64) - 1.0
Y = 0.7


def build(name: str, target_label: float = Y):
    # a loss factory reads only target_label from its config section
    return GENERATOR_LOSSES.get(name)(SimpleNamespace(target_label=target_label))


# the author's formulas (GAN_losses_iter_beyond_divergence_min.py, loss_G 1..20), written out one by
# one in terms of her critic's output D = sigmoid(logit) and log D; an independent transcription
# of the id table. Takes logits.
def _author(loss_id: int, logit_r, logit_f, y):
    m = torch.mean
    dr, df = torch.sigmoid(logit_r), torch.sigmoid(logit_f)
    lr, lf, ly = F.logsigmoid(logit_r), F.logsigmoid(logit_f), math.log(y)
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
    # docs/methods.md section 6: E(d) 1/5/9/13/17, E(d)_lab 2/6/10/14/18, d(E) 3/7/11/15/19, d(E)_lab 4/8/12/16/20
    classes = {("mean_of_distances", "real"): [1, 5, 9, 13, 17], ("mean_of_distances", "label"): [2, 6, 10, 14, 18],
               ("distance_of_means", "real"): [3, 7, 11, 15, 19], ("distance_of_means", "label"): [4, 8, 12, 16, 20]}
    distances = [("l2", "sigmoid"), ("l1", "sigmoid"), ("pseudo_huber", "sigmoid"), ("l2", "log"), ("l1", "log")]
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
    # under the optimal GAN critic: wgan/hinge follow reverse KL; lsgan (E(d)_lab L2 on logits,
    # y^ = 1) is no divergence, nor are the other logit-space label losses; the log-space version
    # (id 14) is one, and mode-seeking
    wgan = implied_divergence(build("wgan").per_sample)
    assert wgan.tail_exponents() == pytest.approx((2.0, 2.0), abs=1e-6)
    assert not implied_divergence(build("lsgan").per_sample).is_convex()
    for name in ("mean_dist_label_l2", "mean_dist_label_l1", "mean_dist_label_huber"):
        assert not implied_divergence(build(name, target_label=1.0).per_sample).is_convex(), name
    log_l2 = implied_divergence(build("14", target_label=1.0).per_sample)
    assert log_l2.is_convex() and log_l2.behaviour() == "mode-seeking"
    assert build("1").per_sample is None


# f'' = -h'(log u) / u^2 with sigmoid(log u) = u / (1 + u), 1 - sigmoid(log u) = 1 / (1 + u):
#   id 2:  h = (1 - s)^2,             h' = -2 s (1 - s)^2            ->  f'' = 2 / (u (1 + u)^3)
#   id 6:  h = 1 - s,                 h' = -s (1 - s)                ->  f'' = 1 / (u (1 + u)^2)
#   id 10: h = sqrt((1 - s)^2 + 1) - 1 ->  f'' = 1 / (u (1 + u)^2 sqrt((1 + u)^2 + 1))
CONVEX_IDS = {
    "2": (lambda u: 2 / (u * (1 + u) ** 3), (1.0, 4.0)),
    "6": (lambda u: 1 / (u * (1 + u) ** 2), (1.0, 3.0)),
    "10": (lambda u: 1 / (u * (1 + u) ** 2 * torch.sqrt((1 + u) ** 2 + 1)), (1.0, 4.0)),
}


@pytest.mark.parametrize("loss_id", sorted(CONVEX_IDS))
def test_probability_space_label_losses_are_convex_divergences(loss_id):
    """The claim of issue 13: on the author's probabilities, ids 2, 6 and 10 (E(d)_lab with L2, L1,
    pseudo-Huber; y^ = 1) decrease in d, so the implied f is convex: f-divergences, unlike their
    logit-space versions (lsgan and kin, test above)."""
    div = implied_divergence(build(loss_id, target_label=1.0).per_sample)
    assert isinstance(div, FDivergence) and div.is_convex()
    f2, tails = CONVEX_IDS[loss_id]
    u = torch.logspace(-6, 6, 25, dtype=torch.float64)
    torch.testing.assert_close(div.f_second(u), f2(u), rtol=1e-9, atol=0)
    assert div.tail_exponents() == pytest.approx(tails, abs=1e-5)
    assert div.behaviour() == "mode-seeking"  # a0 + ainf = 5, 4, 5 > 3
    # f(1) = f'(1) = 0 and f >= 0 (a convex f normalised at 1)
    one = torch.tensor([1.0], dtype=torch.float64)
    assert abs(float(div.f(one))) < 1e-14 and abs(float(div.f_prime(one))) < 1e-14
    assert bool((div.f(u) >= -1e-12).all())


@pytest.mark.parametrize("loss_id", sorted(CONVEX_IDS))
def test_probability_label_losses_with_a_soft_label_are_not_divergences(loss_id):
    # y^ = 0.7 < 1: h = g(sigmoid(d) - 0.7) increases once sigmoid(d) > 0.7, so f'' < 0 there
    assert not implied_divergence(build(loss_id, target_label=0.7).per_sample).is_convex()


def test_config_accepts_names_and_rejects_typos():
    cfg = build_config({"objective": {"name": "hinge", "generator_loss": {"name": "14", "target_label": 0.5}}})
    assert cfg.objective.generator_loss.name == "14" and cfg.objective.generator_loss.target_label == 0.5
    with pytest.raises(ConfigError, match="target_label does not apply to generator loss '13'"):
        build_config({"objective": {"generator_loss": {"name": "13", "target_label": 0.5}}})
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


# ----------------------------------------------------------------------------- probability space
# logits whose sigmoids are exact quarters: sigmoid(log 3) = 3/4, sigmoid(0) = 1/2, sigmoid(-log 3) = 1/4
L3 = math.log(3.0)
P_REAL = torch.tensor([L3, 0.0], dtype=torch.float64)  # D_r = (3/4, 1/2)
P_FAKE = torch.tensor([-L3, L3], dtype=torch.float64)  # D_f = (1/4, 3/4)
hub = lambda a: math.sqrt(a * a + 1) - 1  # noqa: E731
# by hand, y^ = 1: D_r - D_f = (1/2, -1/4), D_f - 1 = (-3/4, -1/4), mean D_r - mean D_f = 1/8,
# mean D_f - 1 = -1/2
HAND = {
    "1": (0.25 + 0.0625) / 2, "2": (0.5625 + 0.0625) / 2, "3": 0.015625, "4": 0.25,
    "5": (0.5 + 0.25) / 2, "6": (0.75 + 0.25) / 2, "7": 0.125, "8": 0.5,
    "9": (hub(0.5) + hub(0.25)) / 2, "10": (hub(0.75) + hub(0.25)) / 2, "11": hub(0.125), "12": hub(0.5),
}


@pytest.mark.parametrize("loss_id", sorted(HAND, key=int))
def test_ids_1_to_12_on_probabilities_by_hand(loss_id):
    loss = build(loss_id, target_label=1.0)
    value = float(loss(P_REAL if loss.needs_real else None, P_FAKE))
    assert value == pytest.approx(HAND[loss_id], rel=1e-12, abs=1e-15)
    # the alias is the prob_ loss, and the logit loss of the same class is another number
    reduction, reference, distance, space = jm_alias(int(loss_id))
    assert space == "sigmoid" and repr(build(readable_name(reduction, reference, distance, "sigmoid"), 1.0)) == repr(loss)
    logit_loss = build(readable_name(reduction, reference, distance, "raw"), 1.0)
    assert abs(float(logit_loss(P_REAL if loss.needs_real else None, P_FAKE)) - HAND[loss_id]) > 1e-3


def test_probability_label_loss_with_a_soft_label_by_hand():
    # id 2, y^ = 0.7: ((1/4 - 0.7)^2 + (3/4 - 0.7)^2) / 2 = (0.2025 + 0.0025) / 2
    assert float(build("2", target_label=0.7)(None, P_FAKE)) == pytest.approx(0.1025, rel=1e-12)
    # id 14 keeps log-space: (log(1/4) - log 0.7)^2 and (log(3/4) - log 0.7)^2
    want = ((math.log(0.25 / 0.7)) ** 2 + (math.log(0.75 / 0.7)) ** 2) / 2
    assert float(build("14", target_label=0.7)(None, P_FAKE)) == pytest.approx(want, rel=1e-12)


def test_probability_losses_are_bounded_where_logit_losses_are_not():
    # a critic that is very sure: sigmoid saturates, so the prob_ L2 loss stays <= (1 - 0)^2 = 1
    far = torch.tensor([-50.0, 50.0], dtype=torch.float64)
    assert float(build("2", 1.0)(None, far)) == pytest.approx(0.5, rel=1e-12)
    assert float(build("mean_dist_label_l2", 1.0)(None, far)) == pytest.approx((51**2 + 49**2) / 2, rel=1e-12)


def test_id_2_under_the_ns_critic_is_the_squared_probability_error():
    """In a Game with the NS critic loss, generator loss "2" is exactly mean((sigmoid(d_f) - 1)^2)."""
    from occamgan.build import build_experiment

    cfg = build_config({
        "objective": {"name": "ns", "generator_loss": "2"},  # target label y^ = 1 by default
        "data": {"name": "ring8", "n_samples": 128},
        "model": {"depth": 1, "width": 16},
        "train": {"batch_size": 16, "device": "cpu"},
    })
    exp = build_experiment(cfg)
    real = exp.data.batch_sampler(16, seed=0).next()
    fake = exp.game.generate(torch.randn(16, cfg.model.latent_dim, generator=torch.Generator().manual_seed(0)))
    with torch.no_grad():
        d = exp.game.critic(fake)
        want = (torch.sigmoid(d) - 1).pow(2).mean()
        got = exp.game.generator_loss(real, fake)
    assert torch.equal(got, want)
    assert not exp.game.custom_generator_loss.needs_real


# ----------------------------------------------------------------------------- relativistic
def test_relativistic_generator_losses_are_the_objectives_own():
    for name, cls in RELATIVISTIC.items():
        loss = build(name)
        assert isinstance(loss, ObjectiveGeneratorLoss) and isinstance(loss.objective, cls)
        assert loss.needs_real
        objective = cls()
        torch.testing.assert_close(loss(D_REAL, D_FAKE), objective.generator_loss(D_REAL, D_FAKE), rtol=0, atol=0)
        with pytest.raises(ValueError, match="needs D"):
            loss(None, D_FAKE)
