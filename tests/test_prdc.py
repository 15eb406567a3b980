"""Precision/recall (k = 3) and density/coverage (k = 5) on cases worked out by hand."""
import pytest
import torch

from occamgan.metrics.prdc import density_coverage, knn_radii2, precision_recall, prdc


def line(*xs: float) -> torch.Tensor:
    return torch.tensor(xs, dtype=torch.float64)[:, None]


REAL = line(*range(10))  # reals on the integer grid 0..9 of a line


def test_knn_radii_on_a_grid():
    r2 = knn_radii2(REAL, (3, 5))
    # 3rd nearest other point: 3 at the ends (0 -> 1, 2, 3), 2 inside (4 -> 3, 5, 2|6)
    assert r2[3].sqrt().tolist() == [3, 2, 2, 2, 2, 2, 2, 2, 2, 3]
    assert r2[5].sqrt().tolist() == [5, 4, 3, 3, 3, 3, 3, 3, 4, 5]


def test_precision_counts_fakes_inside_real_balls():
    # 4.5 lies in the ball of 4 (radius 2), -2.5 in that of 0 (radius 3); 12.5 is 3.5 > 3 from 9
    out = precision_recall(REAL, line(4.5, 30.0, -2.5, 12.5))
    assert out["precision"] == 0.5
    # the outlier fakes have huge 3-NN balls, which cover every real: recall's known weakness
    assert out["recall"] == 1.0


def test_mode_collapse_has_full_precision_and_low_recall():
    collapsed = line(0.0, 0.1, 0.2, 0.3)
    out = prdc(REAL, collapsed)
    assert out["precision"] == 1.0
    # fake 3-NN radii are 0.3 / 0.2: only the real at 0 is inside a fake ball
    assert out["recall"] == pytest.approx(0.1)
    # k = 5 real radii [5, 4, 3, 3, 3, ...]: reals 0..3 have a fake within their radius
    # (real 3 at distance 2.7 <= 3), real 4 does not (3.7 > 3)
    assert out["coverage"] == pytest.approx(0.4)
    # every fake lies in the balls of reals 0, 1, 2, 3 (fake 0 on the boundary of 3: closed balls)
    assert out["density"] == pytest.approx(16 / (5 * 4))


def test_identical_sets_and_disjoint_sets():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(300, 5, generator=gen)
    same = prdc(x, x.clone())
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0
    far = prdc(x, x + 100.0)
    assert far == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_blocked_computation_equals_unblocked():
    gen = torch.Generator().manual_seed(1)
    real, fake = torch.randn(257, 6, generator=gen), 1.2 * torch.randn(199, 6, generator=gen) + 0.3
    whole = prdc(real, fake, block_elems=10**9)
    for block in (1, 500, 4099):  # one row per block, a few rows, uneven split
        assert prdc(real, fake, block_elems=block) == whole
    assert 0.0 < whole["precision"] < 1.0 and 0.0 < whole["recall"] < 1.0


def test_same_distribution_scores_high_and_density_near_one():
    gen = torch.Generator().manual_seed(2)
    real, fake = torch.randn(2000, 4, generator=gen), torch.randn(2000, 4, generator=gen)
    out = prdc(real, fake)
    assert out["precision"] > 0.85 and out["recall"] > 0.85
    assert out["coverage"] > 0.9
    assert out["density"] == pytest.approx(1.0, abs=0.1)  # Naeem et al.: E[density] = 1 for p = q


def test_separate_functions_use_their_own_k():
    gen = torch.Generator().manual_seed(3)
    real, fake = torch.randn(120, 3, generator=gen), torch.randn(90, 3, generator=gen) * 0.5
    both = prdc(real, fake)
    assert precision_recall(real, fake) == {k: both[k] for k in ("precision", "recall")}
    assert density_coverage(real, fake) == {k: both[k] for k in ("density", "coverage")}


def test_too_few_points_for_k_is_an_error():
    with pytest.raises(ValueError, match="need more than 5"):
        prdc(line(0, 1, 2, 3, 4), line(0, 1, 2, 3, 4, 5))
