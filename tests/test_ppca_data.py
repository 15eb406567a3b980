"""The synthetic pPCA data set (src/occamgan/data/ppca.py): shape, seeding, covariance."""
import pytest
import torch

from occamgan.config import build_config, config_section
from occamgan.data import DATASETS
from occamgan.data.base import build_data
from occamgan.data.ppca import ppca_covariance, ppca_loading
from occamgan.errors import ConfigError


def make(**values):
    return DATASETS.get("ppca")(config_section("data", name="ppca", **values))


def test_shape_and_defaults():
    data = make(n_samples=50)
    assert data.data.shape == (50, 10) and data.kind == "toy" and data.data.dtype == torch.float32
    assert data.info["loading"].shape == (10, 3) and data.info["rank"] == 3
    assert make(n_samples=7, ppca_dim=4, ppca_rank=2).data.shape == (7, 4)


def test_points_follow_data_seed_and_loading_is_fixed():
    a, b, c = make(seed=3, n_samples=100), make(seed=3, n_samples=100), make(seed=4, n_samples=100)
    assert torch.equal(a.data, b.data) and not torch.equal(a.data, c.data)
    # the loading matrix does not depend on the data draw, only on its own seed
    assert torch.equal(a.info["loading"], c.info["loading"])
    assert not torch.equal(make(ppca_loading_seed=1, n_samples=5).info["loading"], a.info["loading"])


def test_loading_has_orthogonal_columns_with_the_stated_singular_values():
    w = ppca_loading(10, 3, seed=0).double()
    assert torch.allclose(w.T @ w, torch.diag(torch.tensor([4.0, 2.25, 1.0], dtype=torch.float64)), atol=1e-5)
    assert torch.equal(ppca_loading(10, 3, seed=0), ppca_loading(10, 3, seed=0))


def test_empirical_covariance_matches_the_model():
    data = make(n_samples=40_000, seed=1)
    x = data.data.double()
    cov = torch.cov(x.T)
    expected = ppca_covariance(data.info["loading"], 0.1)
    assert torch.allclose(expected, data.info["covariance"])
    assert x.mean(0).abs().max() < 0.03
    assert (cov - expected).norm() / expected.norm() < 0.02
    # the smallest D - r eigenvalues are the noise variance
    eig = torch.linalg.eigvalsh(cov)
    assert torch.allclose(eig[:7], torch.full((7,), 0.01, dtype=torch.float64), atol=1e-3)


def test_noise_free_points_lie_in_the_loading_span():
    data = make(n_samples=200, ppca_noise=0.0)
    w = data.info["loading"].double()
    proj = w @ torch.linalg.solve(w.T @ w, w.T)
    assert torch.allclose(data.data.double() @ proj, data.data.double(), atol=1e-5)


def test_rank_above_dimension_is_a_config_error():
    with pytest.raises(ConfigError, match="ppca_rank"):
        make(ppca_dim=3, ppca_rank=4)


def test_knobs_live_in_the_data_section_and_build_through_the_config():
    cfg = build_config({"data": {"name": "ppca", "n_samples": 20, "ppca_dim": 6, "ppca_rank": 2, "ppca_noise": 0.5}})
    assert cfg.data.ppca_dim == 6 and build_data(cfg).data.shape == (20, 6)
    with pytest.raises(Exception, match="ppca_noise"):
        build_config({"data": {"name": "ppca", "ppca_noise": -1.0}})
