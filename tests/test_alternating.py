"""The alternating rule: detached critic steps, one generator forward per generator step,
warm-up, EMA."""
import warnings

import pytest
import torch

from occamgan.build import build_experiment
from occamgan.config import build_config
from occamgan.data.base import BatchSampler
from occamgan.train.ema import GeneratorEMA
import math

from occamgan.update_rules.optimizers import LRSchedule


def experiment(*overrides):
    cfg = build_config({}, ["data.n_samples=256", "train.batch_size=32", "model.width=8", *overrides])
    exp = build_experiment(cfg)
    return exp, BatchSampler(exp.data.data, 32, 0)


@pytest.mark.parametrize("n_critic", [1, 3])
def test_generator_runs_forward_once_per_critic_batch_and_never_backward_in_critic_steps(n_critic):
    exp, sampler = experiment(f"train.n_critic={n_critic}")
    calls = {"forward": 0, "backward": 0}
    g = exp.game.generator
    g.register_forward_hook(lambda *a: calls.__setitem__("forward", calls["forward"] + 1))
    g.register_full_backward_hook(lambda *a: calls.__setitem__("backward", calls["backward"] + 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # backward hook on a module whose input is z
        exp.rule.step(exp.game, sampler.next)
    # n_critic fakes for the critic steps, the last one reused by the generator step
    assert calls == {"forward": n_critic, "backward": 1}


def test_critic_step_leaves_generator_gradients_alone_and_generator_step_leaves_critic():
    exp, sampler = experiment("train.n_critic=2")
    d_before = [p.detach().clone() for p in exp.game.discriminator.parameters()]
    exp.rule._critic_steps(exp.game, sampler.next, {})
    assert all(p.grad is None for p in exp.game.generator.parameters())
    assert all(not torch.equal(a, b) for a, b in zip(d_before, exp.game.discriminator.parameters()))
    # the generator step freezes D: the G backward computes no critic weight gradients
    d_grads = [p.grad.clone() for p in exp.game.discriminator.parameters()]
    z = torch.randn(32, 2)
    exp.rule._generator_step(exp.game, sampler.next(), z, exp.game.generate(z))
    assert all(torch.equal(a, p.grad) for a, p in zip(d_grads, exp.game.discriminator.parameters()))
    assert all(p.grad is not None for p in exp.game.generator.parameters())
    assert all(p.requires_grad for p in exp.game.discriminator.parameters())


def test_same_seed_same_result():
    states = []
    for _ in range(2):
        torch.manual_seed(0)
        exp, sampler = experiment("seed=4")
        for _ in range(3):
            exp.rule.step(exp.game, sampler.next)
        states.append([p.detach().clone() for p in exp.game.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*states))


def test_linear_warmup_values():
    w = LRSchedule(steps=4, start=0.01)
    assert [w(s) for s in range(6)] == pytest.approx([0.01, 0.2575, 0.505, 0.7525, 1.0, 1.0])
    assert LRSchedule(0, 0.01)(0) == 1.0


def test_lr_decay_after_warmup_linear_and_cosine():
    lin = LRSchedule(steps=2, start=0.5, decay="linear", total=6, end=0.2)
    # warm-up 0.5, 0.75; then u = 0, 1/4, 2/4, 3/4 of the 4 decay steps; clamped at the end
    assert [lin(s) for s in range(8)] == pytest.approx([0.5, 0.75, 1.0, 0.8, 0.6, 0.4, 0.2, 0.2])
    cos = LRSchedule(steps=0, start=1.0, decay="cosine", total=4, end=0.0)
    assert [cos(s) for s in range(5)] == pytest.approx([1.0, (1 + math.cos(math.pi / 4)) / 2, 0.5,
                                                        (1 + math.cos(3 * math.pi / 4)) / 2, 0.0])
    assert LRSchedule(steps=2, start=0.5, decay="none", total=6)(5) == 1.0


def test_lr_decay_reaches_both_players_at_the_last_step():
    exp, sampler = experiment("train.steps=3", "train.lr_decay=linear", "train.lr_decay_end=0.1", "train.lr_d=2e-3")
    lrs = [exp.rule.step(exp.game, sampler.next) for _ in range(3)]
    # the scheduler steps after each generator step: the lr of the next step is reported
    assert [s["lr_g"] for s in lrs] == pytest.approx([1e-3 * (1 - 0.9 / 3), 1e-3 * (1 - 1.8 / 3), 1e-4])
    assert lrs[-1]["lr_d"] == pytest.approx(2e-4)


def test_warmup_is_applied_to_both_players():
    exp, sampler = experiment("train.warmup_steps=10", "train.warmup_start=0.1", "train.lr_g=1e-3", "train.lr_d=2e-3")
    stats = exp.rule.step(exp.game, sampler.next)
    assert stats["lr_g"] == pytest.approx(1e-3 * (0.1 + 0.9 * 0.1))
    assert stats["lr_d"] == pytest.approx(2e-3 * (0.1 + 0.9 * 0.1))


def test_ema_tracks_before_start_then_averages():
    net = torch.nn.Linear(1, 1, bias=False)
    ema = GeneratorEMA(net, decay=0.9, start=2)
    for step, value in enumerate([1.0, 2.0, 3.0, 4.0], start=1):
        with torch.no_grad():
            net.weight.fill_(value)
        ema.update(net, step)
        if step <= 2:
            assert ema.generator.weight.item() == pytest.approx(value)
    # step 3: 0.9 * 2 + 0.1 * 3 = 2.1; step 4: 0.9 * 2.1 + 0.1 * 4 = 2.29
    assert ema.generator.weight.item() == pytest.approx(2.29)


def test_weight_clipping_runs_after_each_critic_step():
    exp, sampler = experiment("objective.name=wgan", "objective.clip=0.01", "train.n_critic=2")
    exp.rule.step(exp.game, sampler.next)
    assert max(p.abs().max().item() for p in exp.game.discriminator.parameters()) <= 0.01 + 1e-7


def test_simultaneous_rule_moves_both_players():
    exp, sampler = experiment("train.update=simultaneous")
    g0 = [p.detach().clone() for p in exp.game.generator.parameters()]
    d0 = [p.detach().clone() for p in exp.game.discriminator.parameters()]
    exp.rule.step(exp.game, sampler.next)
    assert any(not torch.equal(a, b) for a, b in zip(g0, exp.game.generator.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(d0, exp.game.discriminator.parameters()))
