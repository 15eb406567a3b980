"""Pairwise distances, kernels and the MMD^2 estimators on them, shared by the MMD objective, the
toy MMD score, KID and the k-NN metrics (one implementation of each)."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor


def squared_distances(a: Tensor, b: Tensor) -> Tensor:
    """||a_i - b_j||^2 for every pair of rows (flattened), by the Gram expansion, clamped at 0
    against round-off; differentiable everywhere, unlike cdist's square root."""
    same = b is a
    a = a.flatten(1)
    sq_a = a.pow(2).sum(1)
    if same:  # a kernel of one set: one set of norms
        return (sq_a.unsqueeze(1) + sq_a - 2 * a @ a.T).clamp_min(0)
    b = b.flatten(1)
    return (sq_a.unsqueeze(1) + b.pow(2).sum(1) - 2 * a @ b.T).clamp_min(0)


def rbf_kernel(a: Tensor, b: Tensor, precisions: Sequence[float]) -> Tensor:
    """K(a, b) = sum_l exp(-lambda_l ||a - b||^2) for every pair of rows."""
    sq = squared_distances(a, b)
    # precisions on the leading axis: the sum over them reduces contiguous (n, m) slabs,
    # several times faster than reducing a short trailing axis
    lam = torch.tensor(list(precisions), dtype=sq.dtype, device=sq.device).view(-1, 1, 1)
    return torch.exp(sq * -lam).sum(0)


def polynomial_kernel(x: Tensor, y: Tensor, degree: int = 3, coef0: float = 1.0) -> Tensor:
    """k(x, y) = (x . y / d + coef0)^degree for every pair of rows (KID's kernel)."""
    return (x @ y.T / x.shape[1] + coef0) ** degree


def mmd2_unbiased_from_kernels(k_xx: Tensor, k_yy: Tensor, k_xy: Tensor) -> Tensor:
    """Unbiased MMD^2_u from the three kernel matrices (Gretton et al. 2012, JMLR, Lemma 6):
    sum_{i != j} K(x_i, x_j) / (n (n - 1)) + sum_{i != j} K(y_i, y_j) / (m (m - 1)) - 2 mean K(x, y)."""
    n, m = k_xx.shape[0], k_yy.shape[0]
    if min(n, m) < 2:
        raise ValueError("the unbiased MMD needs at least 2 samples per set")
    within_x = (k_xx.sum() - k_xx.diagonal().sum()) / (n * (n - 1))
    within_y = (k_yy.sum() - k_yy.diagonal().sum()) / (m * (m - 1))
    return within_x + within_y - 2 * k_xy.mean()
