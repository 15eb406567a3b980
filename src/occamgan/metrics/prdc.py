"""Precision/recall and density/coverage of k-nearest-neighbour balls in feature space.

With real features r_1..r_N, fake features f_1..f_M and NND_k(a) the distance from a to its k-th
nearest neighbour within its own set (itself excluded); balls are closed (<=):
- precision = (1/M) sum_j 1[exists i: ||f_j - r_i|| <= NND_k(r_i)]
- recall    = (1/N) sum_i 1[exists j: ||r_i - f_j|| <= NND_k(f_j)]
  (Kynkäänniemi et al. 2019, "Improved Precision and Recall Metric for Assessing Generative
  Models", section 2, eqs. 1-2; k = 3)
- density   = 1/(k M) sum_j sum_i 1[||f_j - r_i|| <= NND_k(r_i)]
- coverage  = (1/N) sum_i 1[min_j ||r_i - f_j|| <= NND_k(r_i)]
  (Naeem et al. 2020, "Reliable Fidelity and Diversity Metrics for Generative Models", eqs. 3-4;
  k = 5)
Distance matrices would need N*M memory, so every quantity is accumulated over row blocks of at
most ``block_elems`` entries; squared Euclidean distances are computed in float64 on the features'
device and compared with squared radii.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..kernels import squared_distances

PR_K = 3
DC_K = 5
#: entries per distance block (float64: 8e6 entries = 64 MB)
BLOCK_ELEMS = 8_000_000


def _as_f64(x: Tensor, device: torch.device | None = None) -> Tensor:
    x = torch.as_tensor(x)
    return x.reshape(x.shape[0], -1).to(device=device or x.device, dtype=torch.float64)


def _block_rows(n_cols: int, block_elems: int) -> int:
    """Rows per block so that a block of the distance matrix has at most block_elems entries."""
    return max(1, block_elems // max(n_cols, 1))


def knn_radii2(x: Tensor, ks: tuple[int, ...], block_elems: int = BLOCK_ELEMS) -> dict[int, Tensor]:
    """Squared distance of each row of x to its k-th nearest other row, for every k in ks."""
    x = _as_f64(x)
    k_max = max(ks)
    if x.shape[0] <= k_max:
        raise ValueError(f"k-nearest-neighbour radii with k={k_max} need more than {k_max} points, got {x.shape[0]}")
    step = _block_rows(x.shape[0], block_elems)
    parts = []
    for start in range(0, x.shape[0], step):
        d2 = squared_distances(x[start : start + step], x)
        # the k+1 smallest include the point itself (distance 0), so the k-th other is index k
        parts.append(d2.topk(k_max + 1, dim=1, largest=False).values)
    smallest = torch.cat(parts)
    return {k: smallest[:, k] for k in ks}


@dataclass
class _FakeVsReal:
    """Counts gathered in one blocked pass over the fake x real distance matrix."""

    fake_in_real_ball: Tensor  # (M,) bool, for precision (PR radius of the reals)
    real_balls_per_fake: Tensor  # (M,) number of real DC balls holding each fake (density)
    real_in_fake_ball: Tensor  # (N,) bool, for recall (PR radius of the fakes)
    nearest_fake2: Tensor  # (N,) squared distance of each real to its nearest fake (coverage)


def _fake_vs_real(
    fake: Tensor, real: Tensor, real_r2_pr: Tensor, real_r2_dc: Tensor, fake_r2_pr: Tensor, block_elems: int
) -> _FakeVsReal:
    m, n = fake.shape[0], real.shape[0]
    out = _FakeVsReal(
        torch.zeros(m, dtype=torch.bool, device=fake.device),
        torch.zeros(m, dtype=torch.float64, device=fake.device),
        torch.zeros(n, dtype=torch.bool, device=fake.device),
        torch.full((n,), float("inf"), dtype=torch.float64, device=fake.device),
    )
    step = _block_rows(n, block_elems)
    for start in range(0, m, step):
        rows = slice(start, start + step)
        d2 = squared_distances(fake[rows], real)  # (block, N)
        out.fake_in_real_ball[rows] = (d2 <= real_r2_pr).any(1)
        out.real_balls_per_fake[rows] = (d2 <= real_r2_dc).sum(1).to(torch.float64)
        out.real_in_fake_ball |= (d2 <= fake_r2_pr[rows, None]).any(0)
        out.nearest_fake2 = torch.minimum(out.nearest_fake2, d2.min(0).values)
    return out


def prdc(
    real: Tensor,
    fake: Tensor,
    k_pr: int = PR_K,
    k_dc: int = DC_K,
    block_elems: int = BLOCK_ELEMS,
) -> dict[str, float]:
    """Precision, recall (k_pr-NN balls) and density, coverage (k_dc-NN balls) in one pass."""
    real = _as_f64(real)
    fake = _as_f64(fake, real.device)
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"feature dimensions differ: {real.shape[1]} vs {fake.shape[1]}")
    real_r2 = knn_radii2(real, (k_pr, k_dc), block_elems)
    fake_r2 = knn_radii2(fake, (k_pr,), block_elems)
    c = _fake_vs_real(fake, real, real_r2[k_pr], real_r2[k_dc], fake_r2[k_pr], block_elems)
    return {
        "precision": c.fake_in_real_ball.double().mean().item(),
        "recall": c.real_in_fake_ball.double().mean().item(),
        "density": (c.real_balls_per_fake.sum() / (k_dc * fake.shape[0])).item(),
        "coverage": (c.nearest_fake2 <= real_r2[k_dc]).double().mean().item(),
    }


def precision_recall(real: Tensor, fake: Tensor, k: int = PR_K, block_elems: int = BLOCK_ELEMS) -> dict[str, float]:
    """Kynkäänniemi et al. (2019) precision and recall with k-NN balls (k = 3)."""
    out = prdc(real, fake, k_pr=k, k_dc=k, block_elems=block_elems)
    return {"precision": out["precision"], "recall": out["recall"]}


def density_coverage(real: Tensor, fake: Tensor, k: int = DC_K, block_elems: int = BLOCK_ELEMS) -> dict[str, float]:
    """Naeem et al. (2020) density and coverage with k-NN balls of the reals (k = 5)."""
    out = prdc(real, fake, k_pr=k, k_dc=k, block_elems=block_elems)
    return {"density": out["density"], "coverage": out["coverage"]}
