"""FID: zero on identical sets, the closed form on Gaussians, float64 streaming statistics, and the
imaginary part of the matrix square root reported instead of dropped silently."""
import numpy as np
import pytest
import torch

from occamgan.metrics.fid import (
    FeatureStatistics,
    GaussianStats,
    fid_from_features,
    fid_from_stats,
    fid_with_diagnostics,
    frechet_distance,
    frechet_distance_with_diagnostics,
    sqrtm_product,
    sqrtm_product_trace,
)


def random_spd(d: int, rng: np.random.Generator, scale: float = 1.0) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return scale * (a @ a.T / d + 0.1 * np.eye(d))


def trace_sqrt_product_by_eigh(c1: np.ndarray, c2: np.ndarray) -> float:
    """Tr((C1 C2)^1/2) = sum sqrt(eig(C1^1/2 C2 C1^1/2)) (a similar SPD matrix), independent of sqrtm."""
    w, v = np.linalg.eigh(c1)
    root = (v * np.sqrt(w)) @ v.T
    return float(np.sqrt(np.clip(np.linalg.eigvalsh(root @ c2 @ root), 0, None)).sum())


def test_fid_of_a_set_with_itself_is_zero():
    x = torch.randn(500, 16, generator=torch.Generator().manual_seed(0)) * 3 + 1
    assert abs(fid_from_features(x, x)) < 1e-8


def test_fid_of_a_rank_deficient_set_with_itself_is_zero():
    # fewer samples than dimensions: singular covariance, the eps-offset fallback may kick in
    x = torch.randn(20, 64, generator=torch.Generator().manual_seed(1))
    assert abs(fid_from_features(x, x)) < 1e-3


def test_diagonal_gaussians_match_closed_form():
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.5])
    s1, s2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2)
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, rel=1e-10)
    assert expected == pytest.approx(1 + 6.25 + 4 + 1, rel=1e-12)  # the hand value 12.25


def test_non_commuting_covariances_match_eigen_formula():
    rng = np.random.default_rng(2)
    c1, c2 = random_spd(20, rng), random_spd(20, rng, scale=3.0)
    assert not np.allclose(c1 @ c2, c2 @ c1)
    assert sqrtm_product_trace(c1, c2) == pytest.approx(trace_sqrt_product_by_eigh(c1, c2), rel=1e-9)
    mu1, mu2 = rng.normal(size=20), rng.normal(size=20)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(c1) + np.trace(c2) - 2 * trace_sqrt_product_by_eigh(c1, c2)
    assert frechet_distance(mu1, c1, mu2, c2) == pytest.approx(expected, rel=1e-9)


def test_fid_of_gaussian_samples_approaches_closed_form():
    rng = np.random.default_rng(3)
    d, n = 4, 40_000
    c1, c2 = random_spd(d, rng), random_spd(d, rng, scale=2.0)
    mu1, mu2 = np.zeros(d), np.full(d, 0.5)
    x = rng.multivariate_normal(mu1, c1, size=n)
    y = rng.multivariate_normal(mu2, c2, size=n)
    exact = frechet_distance(mu1, c1, mu2, c2)
    # estimation error of mean and covariance is O(1/sqrt(n)) ~ 0.5 %; 5 % is a generous band
    assert fid_from_features(x, y) == pytest.approx(exact, rel=0.05)
    assert exact > 1.0  # the check is not trivially satisfied by a near-zero value


def test_streaming_statistics_equal_numpy_in_float64():
    rng = np.random.default_rng(4)
    x = rng.normal(loc=1e4, scale=1.0, size=(1001, 7)).astype(np.float32)  # large offset: needs care
    stats = FeatureStatistics()
    for chunk in np.array_split(x, [1, 10, 400, 401]):  # uneven batches, one of a single row
        stats.update(torch.from_numpy(chunk))
    x64 = x.astype(np.float64)
    assert stats.n == 1001
    np.testing.assert_allclose(stats.mean, x64.mean(0), rtol=0, atol=1e-9)
    np.testing.assert_allclose(stats.cov, np.cov(x64, rowvar=False), rtol=1e-9, atol=1e-9)
    assert stats.mean.dtype == np.float64 and stats.cov.dtype == np.float64


def test_fid_is_symmetric_and_shift_sensitive():
    gen = torch.Generator().manual_seed(5)
    x, y = torch.randn(800, 8, generator=gen), torch.randn(800, 8, generator=gen)
    a, b = GaussianStats.of(x), GaussianStats.of(y + 2.0)
    d_ab = frechet_distance(a.mean, a.cov, b.mean, b.cov)
    d_ba = frechet_distance(b.mean, b.cov, a.mean, a.cov)
    assert d_ab == pytest.approx(d_ba, rel=1e-8)
    assert d_ab == pytest.approx(8 * 4.0, rel=0.1)  # mean shift of 2 in 8 dims dominates


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shapes"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="dimension"):
        FeatureStatistics().update(torch.zeros(5, 3)).update(torch.zeros(5, 4))


# ----------------------------------------------------------------------------- imaginary part
def test_imaginary_ratio_of_a_hand_made_complex_root():
    # S_1 = I, S_2 = diag(4, -1e-4) (not a covariance: one negative eigenvalue) -> the root is
    # diag(2, 0.01 i): real trace 2, largest imaginary entry 0.01, ratio 0.005;
    # FID = 0 + Tr S_1 + Tr S_2 - 2 * 2 = 2 + 3.9999 - 4
    mu = np.zeros(2)
    s1, s2 = np.eye(2), np.diag([4.0, -1e-4])
    trace, ratio = sqrtm_product(s1, s2)
    assert trace == pytest.approx(2.0, rel=1e-12)
    assert ratio == pytest.approx(0.005, rel=1e-9)
    fid, ratio2 = frechet_distance_with_diagnostics(mu, s1, mu, s2)
    assert fid == pytest.approx(1.9999, rel=1e-12) and ratio2 == ratio
    assert frechet_distance(mu, s1, mu, s2) == fid  # the plain value is unchanged: the real part


def test_real_roots_report_zero_and_the_fid_is_unchanged():
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(400, 12)), rng.normal(size=(400, 12)) * 1.5 + 0.2
    a, b = GaussianStats.of(x), GaussianStats.of(y)
    fid, ratio = fid_with_diagnostics(a, b)
    assert isinstance(fid_from_stats(a, b), float) and fid == fid_from_stats(a, b)
    assert ratio == 0.0  # full-rank SPD product: scipy returns a real root
    c1, c2 = random_spd(20, rng), random_spd(20, rng, scale=3.0)
    assert sqrtm_product(c1, c2) == (sqrtm_product_trace(c1, c2), 0.0)


def test_rank_deficient_covariances_give_a_small_but_reported_ratio():
    # fewer samples than dimensions: the product is singular and its root picks up round-off
    gen = torch.Generator().manual_seed(7)
    x, y = torch.randn(20, 64, generator=gen), torch.randn(20, 64, generator=gen)
    fid, ratio = fid_with_diagnostics(GaussianStats.of(x), GaussianStats.of(y))
    assert fid == fid_from_features(x, y)
    assert 0.0 <= ratio < 1e-4 and np.isfinite(ratio)


@pytest.mark.filterwarnings("ignore:Matrix is singular")  # sqrtm of the zero matrix
def test_imaginary_ratio_edge_cases():
    zero = np.zeros((2, 2))
    assert sqrtm_product(zero, zero) == (0.0, 0.0)
    # a zero real trace with an imaginary part: S_1 S_2 = diag(-1, -1) -> root diag(i, i)
    trace, ratio = sqrtm_product(np.eye(2), -np.eye(2))
    assert trace == pytest.approx(0.0, abs=1e-15) and ratio == float("inf")
