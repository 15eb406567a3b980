"""Kernel Inception Distance: the unbiased MMD^2 between feature sets, averaged over subsets.

Kernel (Bińkowski et al. 2018, "Demystifying MMD GANs", section 4 and appendix, eq. 2):
    k(x, y) = (x . y / d + 1)^3          (cubic polynomial, d = feature dimension)
Unbiased estimator on a subset of m fakes X and m reals Y:
    MMD^2_u = sum_{i != j} k(x_i, x_j) / (m (m - 1)) + sum_{i != j} k(y_i, y_j) / (m (m - 1))
              - 2 sum_{i, j} k(x_i, y_j) / m^2
KID is the mean of MMD^2_u over ``n_subsets`` random subsets of size ``subset_size`` drawn without
replacement within each subset (100 x 1000 by default, as torch-fidelity and docs/methods.md section 8);
the standard deviation over subsets is reported next to it. Being unbiased, KID can be negative
when the two distributions are equal.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..kernels import mmd2_unbiased_from_kernels, polynomial_kernel

KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000


def mmd2_unbiased(x: Tensor, y: Tensor, degree: int = 3) -> Tensor:
    """Unbiased MMD^2 between the rows of x and y (same number of rows m >= 2), polynomial kernel."""
    if y.shape[0] != x.shape[0] or x.shape[0] < 2:
        raise ValueError(f"need two sets of the same size >= 2, got {x.shape[0]} and {y.shape[0]}")
    return mmd2_unbiased_from_kernels(*(polynomial_kernel(a, b, degree) for a, b in ((x, x), (y, y), (x, y))))


def kernel_inception_distance(
    fake: Tensor,
    real: Tensor,
    n_subsets: int = KID_SUBSETS,
    subset_size: int = KID_SUBSET_SIZE,
    seed: int = 0,
    degree: int = 3,
) -> tuple[float, float]:
    """(mean, std) of the unbiased MMD^2 over random subsets; the subset size is capped by the
    smaller set. Computed in float64 on the features' device; ``seed`` fixes the subsets."""
    fake = torch.as_tensor(fake).reshape(fake.shape[0], -1).to(torch.float64)
    real = torch.as_tensor(real).reshape(real.shape[0], -1).to(device=fake.device, dtype=torch.float64)
    if fake.shape[1] != real.shape[1]:
        raise ValueError(f"feature dimensions differ: {fake.shape[1]} vs {real.shape[1]}")
    m = min(subset_size, fake.shape[0], real.shape[0])
    gen = torch.Generator().manual_seed(seed)
    values = torch.empty(n_subsets, dtype=torch.float64)
    for s in range(n_subsets):
        i = torch.randperm(fake.shape[0], generator=gen)[:m].to(fake.device)
        j = torch.randperm(real.shape[0], generator=gen)[:m].to(fake.device)
        values[s] = mmd2_unbiased(fake[i], real[j], degree)
    std = values.std(unbiased=True).item() if n_subsets > 1 else 0.0
    return values.mean().item(), std
