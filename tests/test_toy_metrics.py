"""Toy metrics on cases with known answers."""
import math

import numpy as np
import pytest
import torch
from scipy import stats

from occamgan.config import DataConfig, config_section
from occamgan.data.toy import ring8
from occamgan.metrics.toy import chi2_score, mode_stats, toy_metrics, w2


def points_with_squared_norms(s):
    s = torch.as_tensor(s, dtype=torch.float64)
    angle = torch.linspace(0, 2 * math.pi, len(s), dtype=torch.float64)
    return torch.stack([s.sqrt() * angle.cos(), s.sqrt() * angle.sin()], 1)


def test_chi2_score_is_zero_for_balanced_deciles():
    # 1000 points at the midpoint quantile of each chi^2_2 decile: exactly 1000 per bin
    mids = stats.chi2(df=2).ppf((np.arange(10) + 0.5) / 10)
    assert chi2_score(points_with_squared_norms(np.repeat(mids, 1000))) == pytest.approx(0.0, abs=1e-12)


def test_chi2_score_of_collapsed_samples():
    # all mass in one decile: counts/expected = (10, 0, ..., 0) -> sqrt((81 + 9) / 10) = 3
    assert chi2_score(torch.zeros(10_000, 2)) == pytest.approx(3.0, rel=1e-12)


def test_chi2_score_of_true_gaussian_is_small_and_of_scaled_gaussian_is_not():
    gen = torch.Generator().manual_seed(0)
    good = chi2_score(torch.randn(10_000, 2, generator=gen))
    bad = chi2_score(0.5 * torch.randn(10_000, 2, generator=gen))
    assert 0.0 < good < 0.1
    assert bad > 0.5


def test_mode_stats_on_constructed_samples():
    centers = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    std = 0.1
    near = centers[[0, 0, 0, 1, 1, 1]] + 0.05  # within 3 std of modes 0 and 1
    far = torch.tensor([[5.0, 5.0], [5.0, 4.0]])  # far from every mode
    covered, hq = mode_stats(torch.cat([near, far]), centers, std, n_std=3, min_fraction=0.1)
    assert covered == 2
    assert hq == pytest.approx(6 / 8)


def test_mode_needs_its_share():
    centers = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    samples = torch.cat([centers[[0]].repeat(99, 1), centers[[1]]])
    # uniform share 50; 1 sample < 0.1 * 50 = 5 -> mode 1 not covered; min_fraction 0.01 -> covered
    assert mode_stats(samples, centers, 0.1, 3, 0.1)[0] == 1
    assert mode_stats(samples, centers, 0.1, 3, 0.01)[0] == 2


def test_w2_of_translated_set_equals_shift():
    x = torch.randn(200, 2, dtype=torch.float64)
    shift = torch.tensor([3.0, 4.0], dtype=torch.float64)
    assert w2(x, x + shift) == pytest.approx(5.0, rel=1e-9)
    assert w2(x, x[torch.randperm(200)]) == pytest.approx(0.0, abs=1e-7)


def test_w2_matches_brute_force_assignment():
    from itertools import permutations

    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(6, 2, generator=gen), torch.randn(6, 2, generator=gen)
    cost = torch.cdist(x.double(), y.double()).pow(2)
    best = min(sum(cost[i, p[i]].item() for i in range(6)) for p in permutations(range(6))) / 6
    assert w2(x, y) == pytest.approx(math.sqrt(best), rel=1e-9)


def test_w2_refuses_unequal_sizes():
    with pytest.raises(ValueError, match="equal-size"):
        w2(torch.zeros(3, 2), torch.zeros(4, 2))


def test_toy_metrics_of_the_data_itself_are_perfect():
    data = ring8(DataConfig(n_samples=4000))
    fresh = ring8(DataConfig(n_samples=4000, seed=5)).data
    m = toy_metrics(fresh, data, config_section("eval", w2_samples=500), config_section("objective", name="mmd").mmd_bandwidths)
    assert m["modes_covered"] == 8 and m["n_modes"] == 8
    assert 0.97 < m["hq_fraction"] <= 1.0  # P(r < 3 sigma) = 1 - exp(-4.5) = 0.989 in 2-D
    # biased MMD^2 of equal laws has mean 2 (K(0) - E K) / n <= 2 * 7 / 500; allow twice that
    assert 0 < m["mmd"] < 4 * 7 / 500
    # finite-sample W2 between two mixture samples is dominated by per-mode count imbalance
    assert 0 < m["w2"] < 1.0
    collapsed = toy_metrics(data.centers[[0]].repeat(4000, 1), data, config_section("eval", w2_samples=500),
                            config_section("objective", name="mmd").mmd_bandwidths)
    assert collapsed["modes_covered"] == 1 and collapsed["hq_fraction"] == 1.0
    assert collapsed["mmd"] > 10 * m["mmd"] and collapsed["w2"] > 2.0
