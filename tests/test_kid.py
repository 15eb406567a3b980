"""KID: the unbiased polynomial-kernel MMD^2 estimator and its subset average."""
import itertools

import pytest
import torch

from occamgan.metrics.kid import kernel_inception_distance, mmd2_unbiased, polynomial_kernel


def hand_mmd2(x: list[list[float]], y: list[list[float]]) -> float:
    """The estimator written out with Python loops, k(a, b) = (a.b / d + 1)^3."""
    d, m = len(x[0]), len(x)

    def k(a, b):
        return (sum(ai * bi for ai, bi in zip(a, b)) / d + 1) ** 3

    xx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    xy = sum(k(a, b) for a in x for b in y) / (m * m)
    return xx + yy - 2 * xy


def biased_mmd2(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """V-statistic (diagonal included): biased upwards by O(1/m); used to show the test has power."""
    return polynomial_kernel(x, x).mean() + polynomial_kernel(y, y).mean() - 2 * polynomial_kernel(x, y).mean()


def test_matches_hand_computation_on_a_tiny_case():
    x = [[1.0, 0.0], [0.5, -1.0], [2.0, 1.0]]
    y = [[0.0, 1.0], [-1.0, -0.5], [1.5, 0.5]]
    got = mmd2_unbiased(torch.tensor(x, dtype=torch.float64), torch.tensor(y, dtype=torch.float64))
    assert got.item() == pytest.approx(hand_mmd2(x, y), rel=1e-12)


def test_unbiased_on_equal_distributions():
    gen = torch.Generator().manual_seed(0)
    m, reps, d = 20, 400, 4
    unbiased, biased = [], []
    for _ in range(reps):
        x = torch.randn(m, d, generator=gen, dtype=torch.float64)
        y = torch.randn(m, d, generator=gen, dtype=torch.float64)
        unbiased.append(mmd2_unbiased(x, y))
        biased.append(biased_mmd2(x, y))
    u, b = torch.stack(unbiased), torch.stack(biased)
    se = u.std() / reps**0.5
    assert abs(u.mean().item()) < 3.5 * se.item()  # two-sided: mean indistinguishable from 0
    assert b.mean().item() > 10 * se.item()  # the biased estimator would fail the same check
    assert (u < 0).any()  # unbiasedness requires negative values on equal distributions


def test_kid_grows_with_the_distance_between_distributions():
    gen = torch.Generator().manual_seed(1)
    real = torch.randn(600, 16, generator=gen)
    fake = torch.randn(600, 16, generator=gen)
    kids = [kernel_inception_distance(fake + shift, real, n_subsets=20, subset_size=200)[0] for shift in (0.0, 0.3, 1.0)]
    assert abs(kids[0]) < 0.01
    assert kids[0] < kids[1] < kids[2]
    assert kids[2] > 0.1


def test_subsets_are_seeded_and_capped_by_the_set_size():
    gen = torch.Generator().manual_seed(2)
    real, fake = torch.randn(50, 8, generator=gen), torch.randn(50, 8, generator=gen) + 0.5
    a = kernel_inception_distance(fake, real, n_subsets=10, subset_size=30, seed=3)
    b = kernel_inception_distance(fake, real, n_subsets=10, subset_size=30, seed=3)
    c = kernel_inception_distance(fake, real, n_subsets=10, subset_size=30, seed=4)
    assert a == b
    assert a != c
    # a subset size above the set size is capped: every subset is then the whole set (permuted),
    # so the mean is the full-set estimate and the spread is zero
    mean, std = kernel_inception_distance(fake, real, n_subsets=5, subset_size=1000)
    assert mean == pytest.approx(mmd2_unbiased(fake.double(), real.double()).item(), rel=1e-10)
    assert std == pytest.approx(0.0, abs=1e-12)


def test_rejects_mismatched_dimensions():
    with pytest.raises(ValueError, match="dimensions"):
        kernel_inception_distance(torch.zeros(10, 3), torch.zeros(10, 4))
