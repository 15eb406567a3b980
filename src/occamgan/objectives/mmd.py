"""MMD-GAN without a critic: the kernel acts on raw (flattened) samples (docs/methods.md section 2;
Li et al. 2015 "Generative moment matching networks", Eq. 3; Dziugaite et al. 2015).

  MMD^2_b = mean K(x, x') + mean K(y, y') - 2 mean K(x, y),  K(a, b) = sum_l exp(-lambda_l ||a - b||^2)

(biased V-statistic, diagonals included), with the paper code's precisions
lambda = [1, 0.5, 0.1, 0.02, 0.01, 0.002, 0.001]. No discriminator step.

``objective.mmd_unbiased`` trains on the unbiased U-statistic instead (Gretton et al. 2012, JMLR,
Lemma 6: the within-set means skip i = j). Why it matters: in the V-statistic the generator's
repulsive term mean K(y, y') carries weight (m - 1)/m against the attractive cross term, so the
expected loss is not the population MMD^2 but adds (1/m)(K(0) - E K(y, y')), which rewards
concentrated fakes. With the broad kernels (lambda <= 0.02, almost quadratic) this is a pull of
the generated variance towards 0 of strength ~ 2 lambda / m; on the paper's 2-D Gaussian (m = 50)
the linear generator's variance came out ~10 % short (docs/experiments/gaussian.md).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from pydantic import Field, field_validator

from ..kernels import mmd2_unbiased_from_kernels, rbf_kernel
from ..params import Params
from .base import OBJECTIVES, Objective


class MMDParams(Params):
    #: RBF precisions lambda_l in K(a, b) = sum_l exp(-lambda_l ||a - b||^2)
    mmd_bandwidths: list[float] = Field(
        default_factory=lambda: [1.0, 0.5, 0.1, 0.02, 0.01, 0.002, 0.001], min_length=1
    )
    #: train on the unbiased U-statistic (the paper's code: the biased V-statistic, whose 1/m
    #: bias shrinks the generated variance; module docstring)
    mmd_unbiased: bool = False

    @field_validator("mmd_bandwidths")
    @classmethod
    def _positive(cls, v: list[float]) -> list[float]:
        if any(b <= 0 for b in v):
            raise ValueError("every bandwidth must be > 0")
        return v


#: largest (n + m)^2 * len(precisions) for which mmd2 builds one joint kernel matrix (32 MB
#: in float64); bigger sets (evaluation on thousands of samples) are done block by block
JOINT_KERNEL_MAX_ELEMENTS = 1 << 22


def mmd2(x: Tensor, y: Tensor, precisions: Sequence[float]) -> Tensor:
    """Biased multi-bandwidth MMD^2 between sample sets x and y.

    Small sets (training batches) use one kernel matrix K of the stacked set [x; y] and the
    weights w = (1/n, ..., 1/n, -1/m, ..., -1/m): MMD^2_b = w^T K w, the same sum as the three
    block means in a third of the operations (the training step of the Gaussian experiment is
    dominated by them)."""
    n, m = x.shape[0], y.shape[0]
    if (n + m) ** 2 * len(precisions) > JOINT_KERNEL_MAX_ELEMENTS:
        k_xx = rbf_kernel(x, x, precisions).mean()
        k_yy = rbf_kernel(y, y, precisions).mean()
        k_xy = rbf_kernel(x, y, precisions).mean()
        return k_xx + k_yy - 2 * k_xy
    xy = torch.cat([x, y])
    k = rbf_kernel(xy, xy, precisions)
    w = torch.cat([xy.new_full((n,), 1.0 / n), xy.new_full((m,), -1.0 / m)])
    return w @ k @ w


def mmd2_unbiased(x: Tensor, y: Tensor, precisions: Sequence[float]) -> Tensor:
    """Unbiased multi-bandwidth MMD^2_u (Gretton et al. 2012, Lemma 6):
    sum_{i != j} K(x_i, x_j) / (n (n - 1)) + sum_{i != j} K(y_i, y_j) / (m (m - 1)) - 2 mean K(x, y).
    Needs at least two samples per set."""
    return mmd2_unbiased_from_kernels(rbf_kernel(x, x, precisions), rbf_kernel(y, y, precisions),
                                      rbf_kernel(x, y, precisions))


class MMD(Objective):
    has_discriminator = False
    zero_sum = True

    def __init__(self, precisions: Sequence[float], unbiased: bool = False):
        self.precisions = list(precisions)
        self.estimator = mmd2_unbiased if unbiased else mmd2

    def sample_loss(self, real: Tensor, fake: Tensor) -> Tensor:
        return self.estimator(real, fake, self.precisions)


OBJECTIVES.add("mmd", lambda cfg: MMD(cfg.mmd_bandwidths, cfg.mmd_unbiased), params=MMDParams)
