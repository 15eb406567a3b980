"""Synthetic probabilistic-PCA data (Tipping & Bishop 1999; docs/methods.md section 9): the exact test
case of the evidence, where the true latent dimension is known.

    x = W0 z + ppca_noise * eps,    z ~ N(0, I_r),  eps ~ N(0, I_D),    r = ppca_rank, D = ppca_dim

so x ~ N(0, W0 W0^T + ppca_noise^2 I_D). The loading matrix W0 (D x r) is a deterministic
function of ``ppca_loading_seed`` (fixed across data draws): W0 = Q diag(s) with Q the orthonormal
factor of a seeded Gaussian D x r matrix and singular values s evenly spaced from 2 down to 1 (so
the signal variances are 4 ... 1, well above the noise variance). The ``data.n_samples`` points
are drawn with ``data.seed``, so "ten data draws" are data.seed 0..9 around one W0.

The factory keeps W0 and the true covariance in ``info`` (``loading``, ``covariance``) for
experiments that compare fits against them (docs/experiments/evidence.md).
"""
from __future__ import annotations

from typing import Any

import torch
from pydantic import Field

from ..errors import ConfigError
from ..params import Params
from .base import DATASETS, DataSource

#: the signal singular values run evenly from the first to the second (both included)
SINGULAR_VALUES = (2.0, 1.0)


class PPCAParams(Params):
    #: ppca data: dimension D of the points
    ppca_dim: int = Field(10, ge=1)
    #: ppca data: true latent dimension r (rank of the loading matrix), at most ppca_dim
    ppca_rank: int = Field(3, ge=1)
    #: ppca data: standard deviation of the isotropic noise added to W0 z
    ppca_noise: float = Field(0.1, ge=0)
    #: ppca data: seed of the loading matrix W0, fixed across data draws (data.seed draws the points)
    ppca_loading_seed: int = 0


def ppca_loading(dim: int, rank: int, seed: int = 0) -> torch.Tensor:
    """The true loading matrix W0 (dim x rank, float32): orthonormal columns scaled by singular
    values evenly spaced from 2 to 1, a deterministic function of ``seed``."""
    if not 1 <= rank <= dim:
        raise ConfigError(f"data.ppca_rank must be between 1 and data.ppca_dim = {dim} (got {rank})")
    gen = torch.Generator().manual_seed(int(seed))
    q, r = torch.linalg.qr(torch.randn(dim, rank, generator=gen, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))  # the unique QR with a positive diagonal: no sign ambiguity
    hi, lo = SINGULAR_VALUES
    s = torch.linspace(hi, lo, rank, dtype=torch.float64) if rank > 1 else torch.tensor([hi], dtype=torch.float64)
    return (q * s).float()


def ppca_covariance(loading: torch.Tensor, noise: float) -> torch.Tensor:
    """W0 W0^T + noise^2 I (float64), the covariance of the data."""
    w = loading.double()
    return w @ w.T + noise ** 2 * torch.eye(w.shape[0], dtype=torch.float64)


@DATASETS.register("ppca", params=PPCAParams)
def ppca(cfg: Any) -> DataSource:
    """``data.n_samples`` points of x = W0 z + noise eps in ``data.ppca_dim`` dimensions; W0 from
    ``data.ppca_loading_seed``, the points from ``data.seed``."""
    loading = ppca_loading(cfg.ppca_dim, cfg.ppca_rank, cfg.ppca_loading_seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    z = torch.randn(cfg.n_samples, cfg.ppca_rank, generator=gen)
    eps = torch.randn(cfg.n_samples, cfg.ppca_dim, generator=gen)
    points = z @ loading.T + cfg.ppca_noise * eps
    info = {"loading": loading, "covariance": ppca_covariance(loading, cfg.ppca_noise), "rank": cfg.ppca_rank,
            "noise": cfg.ppca_noise}
    return DataSource("ppca", points, info=info)
