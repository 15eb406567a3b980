"""Toy 2-D data sets, each a fixed, seeded training set held in memory.

- ``gaussian``: 200 points from N(0, I_2), the paper's Gaussian experiment (Filippone & Linhard
  2025, Sec. 6.1; docs/methods.md section 4). Drawn with ``data.seed``: fixed across training seeds by
  default; the authors' code draws them after seeding each run, so each seed has its own 200
  points: ``data.seed_from_run: true`` asks for that (data.seed = the run's ``seed``);
- ``ring8``: a mixture of 8 Gaussians on a circle of radius ``data.radius``;
- ``grid25``: a mixture of 25 Gaussians on a 5 x 5 grid spanning [-radius, radius]^2;
- ``swissroll``: the 2-D swiss roll, scaled to about [-2, 2]^2, with noise ``data.std``.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from ..errors import ConfigError
from ..params import Params
from .base import DATASETS, DataSource, for_run  # noqa: F401  (for_run: re-exported)

GAUSSIAN_POINTS = 200


def _mixture(name: str, centers: torch.Tensor, cfg: Any) -> DataSource:
    gen = torch.Generator().manual_seed(cfg.seed)
    idx = torch.randint(len(centers), (cfg.n_samples,), generator=gen)
    noise = torch.randn(cfg.n_samples, 2, generator=gen) * cfg.std
    return DataSource(name, centers[idx] + noise, centers=centers, std=cfg.std)


class GaussianParams(Params):
    #: gaussian data: draw the 200 points with the run's seed instead of data.seed, so that every
    #: training seed has its own data set (the authors' protocol). The builder resolves it by
    #: handing the factory the data section with seed = the run seed (see for_run)
    seed_from_run: bool = False


@DATASETS.register("gaussian", params=GaussianParams)
def gaussian(cfg: Any) -> DataSource:
    """The paper's training set: 200 draws from N(0, I_2) (size fixed, seed ``data.seed``).

    ``cfg`` is the data section; an unresolved ``seed_from_run`` (a section that did not pass
    through :func:`for_run`) is an error rather than a silently fixed draw."""
    if getattr(cfg, "seed_from_run", False):
        raise ConfigError("data.seed_from_run: this data section was not resolved against the run seed "
                          "(data.toy.for_run); set data.seed to the run's seed instead")
    gen = torch.Generator().manual_seed(cfg.seed)
    return DataSource("gaussian", torch.randn(GAUSSIAN_POINTS, 2, generator=gen), standard_normal=True,
                      info={"seed": int(cfg.seed)})


@DATASETS.register("ring8")
def ring8(cfg: Any) -> DataSource:
    angles = torch.arange(8, dtype=torch.float32) * (2 * math.pi / 8)
    centers = cfg.radius * torch.stack([angles.cos(), angles.sin()], dim=1)
    return _mixture("ring8", centers, cfg)


@DATASETS.register("grid25")
def grid25(cfg: Any) -> DataSource:
    ticks = torch.linspace(-cfg.radius, cfg.radius, 5)
    centers = torch.cartesian_prod(ticks, ticks)
    return _mixture("grid25", centers, cfg)


@DATASETS.register("swissroll")
def swissroll(cfg: Any) -> DataSource:
    """Swiss roll t (cos t, sin t), t ~ U(1.5 pi, 4.5 pi), scaled by 1/5 (max radius ~2.8)."""
    gen = torch.Generator().manual_seed(cfg.seed)
    t = 1.5 * math.pi * (1 + 2 * torch.rand(cfg.n_samples, generator=gen))
    points = torch.stack([t * t.cos(), t * t.sin()], dim=1) / 5.0
    return DataSource("swissroll", points + cfg.std * torch.randn(cfg.n_samples, 2, generator=gen))
