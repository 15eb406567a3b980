"""Toy 2-D data sets, each a fixed, seeded training set held in memory.

- ``gaussian``: the fixed 200 points from N(0, I_2) of the paper's Gaussian experiment
  (Filippone & Linhard 2025, Sec. 6.1; methods.md section 4);
- ``ring8``: a mixture of 8 Gaussians on a circle of radius ``data.radius``;
- ``grid25``: a mixture of 25 Gaussians on a 5 x 5 grid spanning [-radius, radius]^2;
- ``swissroll``: the 2-D swiss roll, scaled to about [-2, 2]^2, with noise ``data.std``.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from .base import DATASETS, DataSource

GAUSSIAN_POINTS = 200


def _mixture(name: str, centers: torch.Tensor, cfg: Any) -> DataSource:
    gen = torch.Generator().manual_seed(cfg.seed)
    idx = torch.randint(len(centers), (cfg.n_samples,), generator=gen)
    noise = torch.randn(cfg.n_samples, 2, generator=gen) * cfg.std
    return DataSource(name, centers[idx] + noise, centers=centers, std=cfg.std)


@DATASETS.register("gaussian")
def gaussian(cfg: Any) -> DataSource:
    """The paper's fixed training set: 200 draws from N(0, I_2) (size fixed, seed ``data.seed``)."""
    gen = torch.Generator().manual_seed(cfg.seed)
    return DataSource("gaussian", torch.randn(GAUSSIAN_POINTS, 2, generator=gen), standard_normal=True)


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
