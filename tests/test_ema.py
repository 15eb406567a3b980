"""The generator EMA (train/ema.py): weights averaged with the decay after ``start``; BatchNorm
buffers averaged the same way (``train.ema_buffers: average``) or copied from the live generator
(``copy``, the authors' EMA, which shadows parameters only)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from occamgan.train.ema import GeneratorEMA


def bn_generator(seed=0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))


def train_steps(g: nn.Module, ema: GeneratorEMA, steps: int, seed=1) -> list[dict[str, torch.Tensor]]:
    """Perturb the weights and refresh the BN statistics (a forward in train mode) each step,
    then update the EMA; returns the generator's state after every step."""
    gen = torch.Generator().manual_seed(seed)
    states = []
    g.train()
    for step in range(1, steps + 1):
        with torch.no_grad():
            for p in g.parameters():
                p.add_(0.1 * torch.randn(p.shape, generator=gen))
            g(torch.randn(16, 2, generator=gen) * step)  # moves running_mean / running_var
        ema.update(g, step)
        states.append({k: v.detach().clone() for k, v in g.state_dict().items()})
    return states


def expected_average(states, name: str, decay: float, start: int) -> torch.Tensor:
    value = states[start - 1][name].double() if start > 0 else None
    for i, state in enumerate(states[start:], start=start + 1):
        x = state[name].double()
        value = x if value is None else decay * value + (1 - decay) * x
    return value


@pytest.mark.parametrize("buffers", ["average", "copy"])
def test_weights_are_averaged_and_buffers_follow_the_mode(buffers):
    decay, start, steps = 0.8, 2, 6
    g = bn_generator()
    ema = GeneratorEMA(g, decay, start, buffers=buffers)
    states = train_steps(g, ema, steps)
    avg = ema.generator.state_dict()
    for name in ("0.weight", "3.bias", "1.weight"):  # parameters, BN affine weights included
        torch.testing.assert_close(avg[name].double(), expected_average(states, name, decay, start), rtol=1e-6,
                                   atol=1e-7)
    for name in ("1.running_mean", "1.running_var"):
        if buffers == "average":
            torch.testing.assert_close(avg[name].double(), expected_average(states, name, decay, start), rtol=1e-6,
                                       atol=1e-7)
            assert not torch.equal(avg[name], states[-1][name])
        else:  # the live generator's statistics, exactly
            assert torch.equal(avg[name], states[-1][name])
    if buffers == "copy":
        assert avg["1.num_batches_tracked"] == states[-1]["1.num_batches_tracked"] == steps


def test_before_start_both_modes_track_the_generator():
    for buffers in ("average", "copy"):
        g = bn_generator()
        ema = GeneratorEMA(g, 0.9, start=5, buffers=buffers)
        states = train_steps(g, ema, 3)
        for name, value in ema.generator.state_dict().items():
            assert torch.equal(value, states[-1][name]), (buffers, name)


def test_modes_agree_without_buffers_and_the_state_round_trips():
    def mlp():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 2))

    results = {}
    for buffers in ("average", "copy"):
        g = mlp()
        ema = GeneratorEMA(g, 0.7, 1, buffers=buffers)
        train_steps(g, ema, 4)
        results[buffers] = ema.state_dict()
        again = GeneratorEMA(mlp(), 0.7, 1, buffers=buffers)
        again.load_state_dict(ema.state_dict())
        assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), ema.state_dict().values()))
    assert all(torch.equal(results["average"][k], results["copy"][k]) for k in results["average"])
    with pytest.raises(ValueError, match="buffers"):
        GeneratorEMA(mlp(), 0.9, 0, buffers="mean")


def test_the_train_knob():
    from occamgan.config import build_config

    assert build_config({}).train.ema_buffers == "average"
    assert build_config({"train": {"ema_buffers": "copy"}}).train.ema_buffers == "copy"


def test_the_builder_passes_the_knob():
    from occamgan.build import build_experiment
    from occamgan.config import build_config

    cfg = build_config({"data": {"name": "ring8", "n_samples": 64}, "model": {"depth": 1, "width": 8},
                        "train": {"ema_buffers": "copy", "device": "cpu"}})
    assert build_experiment(cfg).ema.buffers == "copy"
