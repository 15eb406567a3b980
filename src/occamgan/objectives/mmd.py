"""MMD-GAN without a critic: the kernel acts on raw (flattened) samples (methods.md section 2;
Li et al. 2015 "Generative moment matching networks", Eq. 3; Dziugaite et al. 2015).

  MMD^2_b = mean K(x, x') + mean K(y, y') - 2 mean K(x, y),  K(a, b) = sum_l exp(-lambda_l ||a - b||^2)

(biased V-statistic, diagonals included), with the paper code's precisions
lambda = [1, 0.5, 0.1, 0.02, 0.01, 0.002, 0.001]. No discriminator step.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from .base import OBJECTIVES, Objective


def squared_distances(a: Tensor, b: Tensor) -> Tensor:
    """||a_i - b_j||^2 by expansion (differentiable everywhere, unlike cdist's square root)."""
    a, b = a.flatten(1), b.flatten(1)
    sq = a.pow(2).sum(1, keepdim=True) + b.pow(2).sum(1) - 2 * a @ b.T
    return sq.clamp_min(0)


def rbf_kernel(a: Tensor, b: Tensor, precisions: Sequence[float]) -> Tensor:
    sq = squared_distances(a, b)
    lam = torch.as_tensor(list(precisions), dtype=sq.dtype, device=sq.device)
    return torch.exp(-sq.unsqueeze(-1) * lam).sum(-1)


def mmd2(x: Tensor, y: Tensor, precisions: Sequence[float]) -> Tensor:
    """Biased multi-bandwidth MMD^2 between sample sets x and y."""
    k_xx = rbf_kernel(x, x, precisions).mean()
    k_yy = rbf_kernel(y, y, precisions).mean()
    k_xy = rbf_kernel(x, y, precisions).mean()
    return k_xx + k_yy - 2 * k_xy


class MMD(Objective):
    has_discriminator = False
    zero_sum = True

    def __init__(self, precisions: Sequence[float]):
        self.precisions = list(precisions)

    def sample_loss(self, real: Tensor, fake: Tensor) -> Tensor:
        return mmd2(real, fake, self.precisions)


OBJECTIVES.add("mmd", lambda cfg: MMD(cfg.mmd_bandwidths))
