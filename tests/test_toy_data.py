import math

import pytest
import torch

from occamgan.config import DataConfig, config_section
from occamgan.data import DATASETS
from occamgan.models import MODELS


@pytest.mark.parametrize("name", ["gaussian", "ring8", "grid25", "swissroll"])
def test_toy_sets_are_seeded(name):
    a = DATASETS.get(name)(DataConfig(seed=3)).data
    b = DATASETS.get(name)(DataConfig(seed=3)).data
    c = DATASETS.get(name)(DataConfig(seed=4)).data
    assert a.shape[1] == 2 and torch.equal(a, b) and not torch.equal(a, c)


def test_gaussian_is_the_papers_200_points():
    data = DATASETS.get("gaussian")(DataConfig(n_samples=5000))
    assert data.data.shape == (200, 2) and data.standard_normal


def test_ring8_and_grid25_geometry():
    ring = DATASETS.get("ring8")(DataConfig(radius=2.0, std=0.01))
    assert ring.centers.norm(dim=1).allclose(torch.full((8,), 2.0), atol=1e-6)
    grid = DATASETS.get("grid25")(DataConfig(radius=2.0))
    assert len(grid.centers) == 25 and grid.centers.min() == -2 and grid.centers.max() == 2
    # every point is near its mode
    d = torch.cdist(ring.data, ring.centers).min(1).values
    assert d.max() < 0.06


def test_mixture_components_are_balanced():
    ring = DATASETS.get("ring8")(DataConfig(n_samples=8000, std=0.01))
    counts = torch.bincount(torch.cdist(ring.data, ring.centers).argmin(1), minlength=8)
    assert counts.min() > 850 and counts.max() < 1150


def test_mlp_depth_zero_is_linear():
    pair = MODELS.get("mlp")(config_section("model", depth=0, latent_dim=3), (2,), True)
    g = pair.generator
    z1, z2 = torch.randn(4, 3), torch.randn(4, 3)
    assert torch.allclose(g(z1 + 2 * z2), g(z1) + 2 * (g(z2) - g(torch.zeros(4, 3))), atol=1e-5)
    assert sum(isinstance(m, torch.nn.Linear) for m in g.modules()) == 1


def test_mlp_shapes_and_separate_critic_size():
    pair = MODELS.get("mlp")(config_section("model", depth=2, width=16, d_width=32, d_depth=1, latent_dim=5, dropout=0.1), (2,), True)
    assert pair.generator(torch.randn(7, 5)).shape == (7, 2)
    assert pair.discriminator(torch.randn(7, 2)).shape == (7,)
    widths = [m.out_features for m in pair.discriminator.modules() if isinstance(m, torch.nn.Linear)]
    assert widths == [32, 1]
    assert any(isinstance(m, torch.nn.Dropout) for m in pair.generator.modules())


def test_mlp_without_critic():
    assert MODELS.get("mlp")(config_section("model"), (2,), False).discriminator is None


def test_gaussian_points_can_follow_the_run_seed():
    """data.seed_from_run: each training seed draws its own 200 points (the authors' protocol),
    once the section is resolved against the run seed; unresolved, it is an error, not a silently
    fixed draw."""
    from occamgan.config import build_config
    from occamgan.data.toy import for_run
    from occamgan.errors import ConfigError

    cfg = build_config({"seed": 28347, "data": {"name": "gaussian", "seed_from_run": True, "seed": 0}})
    resolved = for_run(cfg.data, cfg.seed)
    assert resolved.seed == 28347 and not resolved.seed_from_run and cfg.data.seed == 0
    drawn = DATASETS.get("gaussian")(resolved)
    assert torch.equal(drawn.data, DATASETS.get("gaussian")(DataConfig(seed=28347)).data)
    assert drawn.info["seed"] == 28347
    other = DATASETS.get("gaussian")(for_run(cfg.data, 29835)).data
    assert not torch.equal(drawn.data, other)
    with pytest.raises(ConfigError, match="seed_from_run"):
        DATASETS.get("gaussian")(cfg.data)
    # off (the default): the section is used as it is, data.seed fixed across run seeds
    fixed = build_config({"seed": 28347, "data": {"name": "gaussian", "seed": 5}})
    assert for_run(fixed.data, fixed.seed) is fixed.data
    assert torch.equal(DATASETS.get("gaussian")(fixed.data).data, DATASETS.get("gaussian")(DataConfig(seed=5)).data)
