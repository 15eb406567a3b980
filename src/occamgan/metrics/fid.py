"""Fréchet distance between Gaussian fits of two feature sets (FID and its domain-feature kin).

    FID = ||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^{1/2})

(Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
Equilibrium", eq. 6; docs/methods.md section 8). The statistics are accumulated in float64 with a
pairwise (Chan et al.) update, so that millions of features give the same mean and covariance as
one pass over all of them. The matrix square root follows the reference implementations
(pytorch-fid, torch-fidelity): ``scipy.linalg.sqrtm`` of S_1 S_2; if the result is not finite, both
covariances get an offset eps * I and the root is taken again; the real part is kept (tiny
imaginary parts are round-off of a product of two PSD matrices, whose eigenvalues are real and >= 0).
Dropping it is only harmless while it is tiny: :func:`fid_with_diagnostics` also returns the
largest imaginary entry of the root relative to its real trace, for the protocol (pytorch-fid
raises when an imaginary diagonal entry exceeds 1e-3 in absolute terms; a ratio is independent of
the features' scale). Large ratios come from covariances estimated from fewer samples than
dimensions or from non-PSD input.

The functions here know nothing of feature networks: they take features or statistics.
"""
from __future__ import annotations

from dataclasses import dataclass

import logging
import warnings

import numpy as np
import scipy.linalg
import torch
from torch import Tensor

#: offset added to both covariances when sqrtm(S_1 S_2) is not finite (as in pytorch-fid)
SQRTM_EPS = 1e-6


class FeatureStatistics:
    """Running mean and covariance of feature vectors, in float64.

    ``update`` merges a batch with the pairwise formula (Chan, Golub & LeVeque 1979):
    M2 = M2_a + M2_b + delta delta^T n_a n_b / n with delta = mean_b - mean_a, where M2 is the sum
    of outer products of centred features. The covariance is M2 / (n - 1) (unbiased, as np.cov).
    """

    def __init__(self, dim: int | None = None):
        self.n = 0
        self.dim = dim
        self._mean: Tensor | None = None
        self._m2: Tensor | None = None

    def update(self, features: Tensor) -> "FeatureStatistics":
        x = torch.as_tensor(features).detach().reshape(features.shape[0], -1).to(torch.float64)
        if x.shape[0] == 0:
            return self
        if self.dim is not None and x.shape[1] != self.dim:
            raise ValueError(f"features have dimension {x.shape[1]}, expected {self.dim}")
        self.dim = x.shape[1]
        n_b = x.shape[0]
        mean_b = x.mean(0)
        centred = x - mean_b
        m2_b = centred.T @ centred
        if self._mean is None:
            self.n, self._mean, self._m2 = n_b, mean_b, m2_b
            return self
        n_a, n = self.n, self.n + n_b
        delta = mean_b - self._mean.to(x.device)
        self._mean = self._mean.to(x.device) + delta * (n_b / n)
        self._m2 = self._m2.to(x.device) + m2_b + torch.outer(delta, delta) * (n_a * n_b / n)
        self.n = n
        return self

    @property
    def mean(self) -> np.ndarray:
        if self._mean is None:
            raise ValueError("no features have been added")
        return self._mean.cpu().numpy()

    @property
    def cov(self) -> np.ndarray:
        if self._m2 is None or self.n < 2:
            raise ValueError("a covariance needs at least 2 feature vectors")
        return (self._m2 / (self.n - 1)).cpu().numpy()

    def gaussian(self) -> "GaussianStats":
        return GaussianStats(self.mean, self.cov, self.n)


@dataclass
class GaussianStats:
    """Mean, covariance (float64) and the number of feature vectors they summarise."""

    mean: np.ndarray
    cov: np.ndarray
    n: int

    @classmethod
    def of(cls, features: Tensor | np.ndarray) -> "GaussianStats":
        return FeatureStatistics().update(torch.as_tensor(np.asarray(features))).gaussian()


log = logging.getLogger("occamgan")


def sqrtm_product(cov1: np.ndarray, cov2: np.ndarray, eps: float = SQRTM_EPS) -> tuple[float, float]:
    """``(Tr Re (S_1 S_2)^{1/2}, imaginary ratio)`` with scipy's Schur-method sqrtm (eps-offset
    retry if not finite). The ratio is max_ij |Im R_ij| / |Tr Re R| of the root R: the size of what
    the real part drops, relative to the term it enters (0 for a real root; inf when the trace is
    0 and some imaginary part is not; nan when the root is not finite)."""
    with warnings.catch_warnings(record=True) as caught:  # scipy's multi-line warning -> one line of ours
        warnings.simplefilter("always", scipy.linalg.LinAlgWarning)
        root = scipy.linalg.sqrtm(cov1 @ cov2)
        if not np.isfinite(root).all():
            # singular products (e.g. fewer samples than dimensions) can make the Schur root blow up
            offset = np.eye(cov1.shape[0]) * eps
            root = scipy.linalg.sqrtm((cov1 + offset) @ (cov2 + offset))
    if any(issubclass(w.category, scipy.linalg.LinAlgWarning) for w in caught):
        log.warning(f"FID: the covariance product ({cov1.shape[0]} features) is singular, as with fewer images than "
                    "feature dimensions; its square root may be inaccurate (see fid_sqrtm_imag_ratio in the protocol)")
    trace = float(np.real(np.trace(root)))
    imag = float(np.max(np.abs(np.imag(root)))) if np.iscomplexobj(root) and root.size else 0.0
    if not (np.isfinite(trace) and np.isfinite(imag)):
        return trace, float("nan")
    if imag == 0.0:
        return trace, 0.0
    return trace, imag / abs(trace) if trace != 0.0 else float("inf")


def sqrtm_product_trace(cov1: np.ndarray, cov2: np.ndarray, eps: float = SQRTM_EPS) -> float:
    """Tr((S_1 S_2)^{1/2}) with scipy's Schur-method sqrtm; eps-offset retry if not finite."""
    return sqrtm_product(cov1, cov2, eps)[0]


def _checked(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray):
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    cov1, cov2 = np.atleast_2d(np.asarray(cov1, np.float64)), np.atleast_2d(np.asarray(cov2, np.float64))
    if mu1.shape != mu2.shape or cov1.shape != cov2.shape or cov1.shape != (mu1.size, mu1.size):
        raise ValueError(
            f"shapes do not match: means {mu1.shape} / {mu2.shape}, covariances {cov1.shape} / {cov2.shape}"
        )
    return mu1, cov1, mu2, cov2


def frechet_distance_with_diagnostics(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray,
                                      cov2: np.ndarray) -> tuple[float, float]:
    """``(Fréchet distance, imaginary ratio of the matrix square root)`` (see :func:`sqrtm_product`)."""
    mu1, cov1, mu2, cov2 = _checked(mu1, cov1, mu2, cov2)
    diff = mu1 - mu2
    trace_root, imag_ratio = sqrtm_product(cov1, cov2)
    return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * trace_root), imag_ratio


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """||mu_1 - mu_2||^2 + Tr(S_1) + Tr(S_2) - 2 Tr((S_1 S_2)^{1/2}) (Heusel et al. 2017, eq. 6)."""
    return frechet_distance_with_diagnostics(mu1, cov1, mu2, cov2)[0]


def fid_from_stats(a: GaussianStats, b: GaussianStats) -> float:
    return frechet_distance(a.mean, a.cov, b.mean, b.cov)


def fid_with_diagnostics(a: GaussianStats, b: GaussianStats) -> tuple[float, float]:
    """``(FID, imag_ratio)``: the value of :func:`fid_from_stats` and the largest imaginary entry of
    (S_a S_b)^{1/2} relative to its real trace, which the real part silently drops. Record the
    ratio with the FID in the protocol. Full-rank covariances gave exactly 0 in our tests (scipy
    returns a real root); fewer samples than dimensions gave 1e-10 to 1e-8 (round-off of a
    singular product); a ratio near 1e-3 or above means the dropped part is no longer round-off
    (non-PSD input, a broken feature network) and the FID should not be reported as is."""
    return frechet_distance_with_diagnostics(a.mean, a.cov, b.mean, b.cov)


def fid_from_features(features_a: Tensor | np.ndarray, features_b: Tensor | np.ndarray) -> float:
    """Fréchet distance between the Gaussian fits of two feature matrices of shape (N, d)."""
    return fid_from_stats(GaussianStats.of(features_a), GaussianStats.of(features_b))
