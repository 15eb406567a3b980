"""One training step of every objective on every toy set (the compare_gan habit)."""
import itertools

import pytest
import torch

from occamgan.build import build_experiment
from occamgan.config import build_config
from occamgan.data.base import BatchSampler

OBJECTIVES = ["minimax", "ns", "lsgan", "hinge", "wgan", "wgan_gp", "wgan_div", "rgan", "mmd"]
TOY = ["gaussian", "ring8", "grid25", "swissroll"]


@pytest.mark.parametrize("objective, data", list(itertools.product(OBJECTIVES, TOY)))
def test_one_step(objective, data):
    cfg = build_config({}, [f"objective.name={objective}", f"data.name={data}", "data.n_samples=128",
                            "train.batch_size=32", "model.width=8", "model.depth=1", "train.n_critic=2"])
    exp = build_experiment(cfg)
    before = [p.detach().clone() for p in exp.game.generator.parameters()]
    sampler = BatchSampler(exp.data.data, 32, 0)
    stats = exp.rule.step(exp.game, sampler.next)
    assert torch.isfinite(torch.as_tensor(stats["loss_g"]))
    assert any(not torch.equal(a, b) for a, b in zip(before, exp.game.generator.parameters()))
    if exp.game.has_discriminator:
        assert torch.isfinite(torch.as_tensor(stats["loss_d"]))
