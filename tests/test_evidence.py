"""Evidence estimators of the relaxed generator model (bayes/likelihood, importance, hmc, ais,
bdmc, evidence, sigma_fit) against closed forms: probabilistic PCA for a linear generator and 1-D
quadrature for a nonlinear one (docs/methods.md section 9).

Settings: T = 500 geometric steps, L = 5, K = 128 chains, target acceptance 0.9. With P <= 5
latents the default target 0.65 pushes the step size to the leapfrog's stability limit, where
log p(x | z) decorrelates slowly (hmc.py), and the sigmoid schedule spends half its steps where
a Gaussian posterior hardly changes; both cost ~4x in log-weight variance at equal T. One test
covers the defaults on an easier case.
"""
import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad
from torch import nn

from occamgan.bayes.ais import annealing_schedule, ais
from occamgan.bayes.evidence import EvidenceResult, bits_per_dim, estimate_evidence, simulate_and_bound
from occamgan.bayes.hmc import adapt_step_size, hmc_transition, initial_state
from occamgan.bayes.importance import importance_sampling
from occamgan.bayes.likelihood import flat_likelihood_and_grad, flatten_points, log_joint_and_grad, log_likelihood
from occamgan.bayes.sigma_fit import fit_sigma, plot_sigma_curve

FAST = dict(chains=128, steps=500, leapfrog=5, schedule="geometric", target_acceptance=0.9)


# ---------------------------------------------------------------------- test models
def linear_generator(d: int, p: int, seed: int) -> nn.Linear:
    """G(z) = W z + b with W ~ N(0, 1/D) (columns of about unit norm) and b ~ N(0, 0.25)."""
    g = torch.Generator().manual_seed(seed)
    lin = nn.Linear(p, d)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(d, p, generator=g) / math.sqrt(d))
        lin.bias.copy_(0.5 * torch.randn(d, generator=g))
    return lin


def ppca_marginal(lin: nn.Linear, sigma: float) -> torch.distributions.MultivariateNormal:
    """x ~ N(b, W W^T + sigma^2 I) (Tipping & Bishop 1999), in float64."""
    w, b = lin.weight.detach().double(), lin.bias.detach().double()
    return torch.distributions.MultivariateNormal(b, w @ w.T + sigma ** 2 * torch.eye(w.shape[0], dtype=torch.float64))


def ppca_points(lin: nn.Linear, sigma: float, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n points from the model (float32, as data arrive) and their exact log densities."""
    g = torch.Generator().manual_seed(seed)
    marginal = ppca_marginal(lin, sigma)
    x = (marginal.loc + torch.randn(n, marginal.loc.shape[0], generator=g, dtype=torch.float64)
         @ marginal.scale_tril.T).float()
    return x, marginal.log_prob(x.double())


def ppca_posterior(lin: nn.Linear, sigma: float, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (n, P) and covariance (P, P) of p(z | x) for the linear generator."""
    w, b = lin.weight.detach().double(), lin.bias.detach().double()
    cov = torch.linalg.inv(torch.eye(w.shape[1], dtype=torch.float64) + w.T @ w / sigma ** 2)
    return (x.double() - b) @ w / sigma ** 2 @ cov, cov


class Curve(nn.Module):
    """A nonlinear P = 1 generator: a fixed random tanh MLP, 1 -> 16 -> 3."""

    def __init__(self, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(nn.Linear(1, 16), nn.Tanh(), nn.Linear(16, 3))
        with torch.no_grad():
            self.net[0].weight.mul_(2.0)

    def forward(self, z):
        return self.net(z)


def quadrature_log_px(gen: Curve, x: torch.Tensor, sigma: float) -> np.ndarray:
    """log int N(x | G(z), sigma^2 I) N(z | 0, 1) dz by adaptive quadrature on [-9, 9], the
    integrand scaled by its maximum on a fine grid and split at the grid's local maxima. The
    network is re-evaluated in NumPy float64 (quad calls the integrand thousands of times)."""
    w1, b1, w2, b2 = (t.detach().double().numpy() for t in
                      (gen.net[0].weight[:, 0], gen.net[0].bias, gen.net[2].weight, gen.net[2].bias))
    const = -1.5 * math.log(2 * math.pi * sigma ** 2) - 0.5 * math.log(2 * math.pi)

    def log_f(z: np.ndarray, xi: np.ndarray) -> np.ndarray:
        g = np.tanh(np.multiply.outer(z, w1) + b1) @ w2.T + b2
        return -0.5 * ((xi - g) ** 2).sum(-1) / sigma ** 2 - 0.5 * z ** 2 + const

    grid = np.linspace(-9, 9, 20001)
    out = []
    for xi in x.double().numpy():
        values = log_f(grid, xi)
        peak = float(values.max())
        interior = (values[1:-1] > values[:-2]) & (values[1:-1] >= values[2:])
        maxima = list(grid[1:-1][interior][:50])
        value, _ = quad(lambda z: math.exp(float(log_f(np.array([z]), xi)[0]) - peak), -9, 9, points=maxima,
                        limit=500, epsabs=0, epsrel=1e-10)
        out.append(peak + math.log(value))
    return np.asarray(out)


# ---------------------------------------------------------------------- likelihood
def test_log_likelihood_and_gradient_match_the_formula_in_float64():
    lin = linear_generator(6, 3, seed=0)
    x, _ = ppca_points(lin, 0.01, 4, seed=1)
    z = torch.randn(4, 5, 3, generator=torch.Generator().manual_seed(2))
    w, b, sigma = lin.weight.detach().double(), lin.bias.detach().double(), 0.01
    residual = x.double()[:, None, :] - z.double() @ w.T - b
    expected = -0.5 * (residual ** 2).sum(-1) / sigma ** 2 - 6 * math.log(sigma) - 3 * math.log(2 * math.pi)
    ll = log_likelihood(lin, z, x, sigma)
    assert ll.dtype == torch.float64
    # the float32 forward costs ~1e-7 relative in G(z); the float64 sum keeps it there
    torch.testing.assert_close(ll, expected, rtol=1e-5, atol=0)
    _, grad = flat_likelihood_and_grad(lin, z, flatten_points(x).unsqueeze(1), sigma)
    torch.testing.assert_close(grad.double(), residual @ w / sigma ** 2, rtol=1e-4, atol=1e-2)
    joint, joint_grad = log_joint_and_grad(lin, z, x, sigma)
    torch.testing.assert_close(joint, expected - 0.5 * (z.double() ** 2).sum(-1) - 1.5 * math.log(2 * math.pi),
                               rtol=1e-5, atol=0)
    torch.testing.assert_close(joint_grad.double(), residual @ w / sigma ** 2 - z.double(), rtol=1e-4, atol=1e-2)


def test_log_likelihood_refuses_mismatched_shapes():
    lin = linear_generator(4, 2, seed=0)
    with pytest.raises(ValueError, match="points"):
        log_likelihood(lin, torch.zeros(3, 2, 2), torch.zeros(2, 4), 0.1)
    with pytest.raises(ValueError, match="numbers"):
        log_likelihood(lin, torch.zeros(2, 2, 2), torch.zeros(2, 5), 0.1)


# ---------------------------------------------------------------------- schedules and HMC
def test_step_size_adaptation_is_multiplicative_per_point():
    eps = torch.tensor([0.1, 0.1], dtype=torch.float64)
    accept = torch.tensor([[0.9, 0.8], [0.1, 0.3]], dtype=torch.float64)
    torch.testing.assert_close(adapt_step_size(eps, accept), torch.tensor([0.102, 0.098], dtype=torch.float64))


@pytest.mark.parametrize("kind", ["sigmoid", "linear", "geometric"])
def test_schedules_run_from_zero_to_one_and_increase(kind):
    betas = annealing_schedule(200, kind)
    assert len(betas) == 201 and betas[0] == 0.0 and betas[-1] == 1.0
    assert all(b1 > b0 for b0, b1 in zip(betas, betas[1:]))
    if kind == "sigmoid":  # symmetric about the middle (Wu et al. 2017)
        np.testing.assert_allclose(np.array(betas) + np.array(betas[::-1]), 1.0, atol=1e-12)
    with pytest.raises(ValueError, match="schedule"):
        annealing_schedule(10, "cosine")
    with pytest.raises(ValueError, match="schedule"):
        annealing_schedule(2, [0.0, 0.7, 0.5, 1.0])


def test_hmc_leaves_the_exact_posterior_invariant():
    lin = linear_generator(5, 2, seed=3)
    sigma = 0.2
    x, _ = ppca_points(lin, sigma, 2, seed=4)
    mean, cov = ppca_posterior(lin, sigma, x)
    rng = torch.Generator().manual_seed(0)
    z = (mean[:, None, :] + torch.randn(2, 4000, 2, generator=rng, dtype=torch.float64)
         @ torch.linalg.cholesky(cov).T).float()
    xf = flatten_points(x).unsqueeze(1)
    likelihood = lambda zz: flat_likelihood_and_grad(lin, zz, xf, sigma)  # noqa: E731
    # a step size near the stability limit of the tightest direction: many rejections, so a bug
    # in the Metropolis test would show
    eps = torch.full((2,), 1.5 * float(torch.linalg.eigvalsh(cov).min().sqrt()), dtype=torch.float64)
    state = initial_state(z, likelihood)
    for _ in range(20):
        state, accept = hmc_transition(state, 1.0, eps, 5, likelihood, rng)
    assert 0.2 < float(accept.mean()) < 0.9
    zs = state.z.double()
    sd = cov.diagonal().sqrt()
    # 4000 draws: the mean within ~4 standard errors, the covariance within 10%
    assert ((zs.mean(1) - mean).abs() / sd < 4 / math.sqrt(4000) * 1.5).all()
    for i in range(2):
        torch.testing.assert_close(torch.cov(zs[i].T), cov, rtol=0.1, atol=0.02 * float(cov.diagonal().max()))


# ---------------------------------------------------------------------- AIS against closed forms
@pytest.mark.parametrize("sigma", [0.1, 0.5])
@pytest.mark.parametrize("p", [1, 2, 5])
@pytest.mark.parametrize("d", [2, 10])
def test_ais_matches_probabilistic_pca(d, p, sigma):
    lin = linear_generator(d, p, seed=d * 10 + p)
    x, exact = ppca_points(lin, sigma, 20, seed=1)
    res = estimate_evidence(lin, x, latent_dim=p, sigma=sigma, seed=0, **FAST)
    err = res.log_px - exact
    assert abs(float(err.mean())) < 0.05
    assert float(err.abs().max()) < 0.5
    assert 0.8 < res.diagnostics["acceptance_mean"] < 0.97


def test_ais_with_default_schedule_and_acceptance_on_an_easy_case():
    lin = linear_generator(10, 2, seed=5)
    x, exact = ppca_points(lin, 0.5, 20, seed=2)
    res = estimate_evidence(lin, x, latent_dim=2, sigma=0.5, chains=64, steps=500, leapfrog=5, seed=0)
    assert res.protocol["schedule"] == "sigmoid" and res.protocol["target_acceptance"] == 0.65
    err = res.log_px - exact
    assert abs(float(err.mean())) < 0.05 and float(err.abs().max()) < 0.5


@pytest.mark.slow
@pytest.mark.parametrize("d, p", [(10, 5), (2, 5), (10, 2)])
def test_ais_with_default_schedule_and_acceptance_on_the_hard_cases(d, p):
    lin = linear_generator(d, p, seed=d * 10 + p)
    x, exact = ppca_points(lin, 0.1, 20, seed=1)
    res = estimate_evidence(lin, x, latent_dim=p, sigma=0.1, chains=64, steps=2000, leapfrog=10, seed=0)
    err = res.log_px - exact
    assert abs(float(err.mean())) < 0.05 and float(err.abs().max()) < 0.5


@pytest.mark.parametrize("sigma", [0.1, 0.5])
def test_ais_matches_quadrature_for_a_nonlinear_generator(sigma):
    gen = Curve()
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        x = (gen(torch.randn(20, 1, generator=g)) + sigma * torch.randn(20, 3, generator=g))
    exact = quadrature_log_px(gen, x, sigma)
    res = estimate_evidence(gen, x, latent_dim=1, sigma=sigma, seed=0, **{**FAST, "chains": 64})
    err = res.log_px.numpy() - exact
    assert abs(err.mean()) < 0.05
    assert np.abs(err).max() < 0.5


def test_reverse_ais_needs_its_starting_states():
    lin = linear_generator(3, 2, seed=9)
    x = torch.zeros(2, 3)
    common = dict(latent_dim=2, sigma=0.5, chains=4, steps=5, leapfrog=2, rng=torch.Generator())
    with pytest.raises(ValueError, match="z_init"):
        ais(lin, x, reverse=True, **common)
    with pytest.raises(ValueError, match="z_init"):
        ais(lin, x, reverse=True, z_init=torch.zeros(2, 3), **common)
    with pytest.raises(ValueError, match="reverse"):
        ais(lin, x, z_init=torch.zeros(2, 2), **common)
    rev = ais(lin, x, reverse=True, z_init=torch.zeros(2, 2), **common)
    assert rev.reverse and rev.log_w.shape == (2, 4)
    torch.testing.assert_close(rev.log_px, -torch.logsumexp(-rev.log_w, 1) + math.log(4), rtol=0, atol=1e-12)


# ---------------------------------------------------------------------- BDMC
@pytest.mark.parametrize("d, p, sigma", [(10, 5, 0.1), (2, 1, 0.5)])
def test_bdmc_bounds_bracket_the_exact_evidence(d, p, sigma):
    lin = linear_generator(d, p, seed=d + p)
    res = simulate_and_bound(lin, 20, latent_dim=p, sigma=sigma, seed=4, **FAST)
    exact = ppca_marginal(lin, sigma).log_prob(res.x)
    lower, upper = res.lower - exact, res.upper - exact
    # stochastic bounds: below / above the truth in the mean up to their noise, and tight
    assert -0.15 < float(lower.mean()) < 0.03
    assert -0.03 < float(upper.mean()) < 0.15
    assert float(lower.abs().max()) < 0.5 and float(upper.abs().max()) < 0.5
    assert -0.05 < res.gap_mean < 0.15
    assert res.lower_mean <= res.upper_mean + 0.02
    assert res.x.shape == (20, d) and res.z.shape == (20, p) and res.protocol["method"] == "bdmc"


# ---------------------------------------------------------------------- importance sampling
def test_importance_sampling_is_exact_at_large_sigma_and_far_off_at_small_sigma():
    lin = linear_generator(2, 1, seed=1)
    x, exact = ppca_points(lin, 0.5, 20, seed=5)
    easy = estimate_evidence(lin, x, latent_dim=1, sigma=0.5, method="is", chains=4000, seed=0)
    assert abs(float((easy.log_px - exact).mean())) < 0.02
    assert easy.diagnostics["ess_mean"] > 1000

    lin = linear_generator(10, 5, seed=55)
    x, exact = ppca_points(lin, 0.1, 20, seed=6)
    is_res = estimate_evidence(lin, x, latent_dim=5, sigma=0.1, method="is", chains=2000, seed=0)
    ais_res = estimate_evidence(lin, x, latent_dim=5, sigma=0.1, seed=0, **FAST)
    is_err = float((is_res.log_px - exact).abs().mean())
    ais_err = float((ais_res.log_px - exact).abs().mean())
    assert is_err > 1.0 and float((is_res.log_px - exact).mean()) < -1.0  # a lower bound, and a loose one
    assert is_res.diagnostics["ess_min"] < 5
    assert ais_err * 10 < is_err


def test_importance_sampling_streams_samples_within_the_batch_bound():
    lin = linear_generator(3, 1, seed=2)
    x, _ = ppca_points(lin, 0.5, 5, seed=7)
    sizes = []
    lin.register_forward_hook(lambda m, i, o: sizes.append(i[0].shape[0]))
    res = importance_sampling(lin, x, latent_dim=1, sigma=0.5, samples=300, rng=torch.Generator().manual_seed(0),
                              batch_size=128)
    assert max(sizes) <= 128 and sum(sizes) == 5 * 300
    assert res.log_px.shape == (5,) and ((res.ess >= 1) & (res.ess <= 300)).all()


# ---------------------------------------------------------------------- the front
class Noisy(nn.Module):
    """A generator with dropout and BatchNorm, to check modes and RNG hygiene."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Dropout(0.5), nn.Linear(8, 3))

    def forward(self, z):
        return self.net(z)


def test_evidence_is_deterministic_leaves_the_global_rng_and_training_flags_alone():
    torch.manual_seed(0)
    gen = Noisy()
    gen.train()
    gen.net[2].eval()  # a mixed state, restored exactly
    flags = [m.training for m in gen.modules()]
    running = gen.net[1].running_mean.clone()
    x = torch.randn(6, 3)
    kwargs = dict(latent_dim=2, sigma=0.3, chains=4, steps=20, leapfrog=2)
    state = torch.random.get_rng_state()
    a = estimate_evidence(gen, x, seed=3, **kwargs)
    assert torch.equal(torch.random.get_rng_state(), state)
    torch.manual_seed(12345)  # the global stream plays no part
    b = estimate_evidence(gen, x, seed=3, **kwargs)
    c = estimate_evidence(gen, x, seed=4, **kwargs)
    assert torch.equal(a.log_px, b.log_px) and not torch.equal(a.log_px, c.log_px)
    assert [m.training for m in gen.modules()] == flags
    assert torch.equal(gen.net[1].running_mean, running)  # eval mode: BatchNorm statistics frozen
    state = torch.random.get_rng_state()
    d = simulate_and_bound(gen, 3, seed=1, **kwargs)
    e = simulate_and_bound(gen, 3, seed=1, **kwargs)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(d.lower, e.lower) and torch.equal(d.upper, e.upper)
    assert [m.training for m in gen.modules()] == flags


def test_evidence_result_fields_protocol_and_bits_per_dim():
    lin = linear_generator(4, 2, seed=0)
    x, _ = ppca_points(lin, 0.5, 5, seed=0)
    res = estimate_evidence(lin, x, latent_dim=2, sigma=0.5, chains=4, steps=10, leapfrog=2, seed=7, batch_size=8)
    assert isinstance(res, EvidenceResult) and res.log_px.dtype == torch.float64 and res.log_px.shape == (5,)
    assert res.mean == pytest.approx(float(res.log_px.mean()))
    assert res.stderr == pytest.approx(float(res.log_px.std()) / math.sqrt(5))
    for key, value in dict(method="ais", sigma=0.5, chains=4, steps=10, leapfrog=2, seed=7, batch_size=8,
                           schedule="sigmoid", latent_dim=2, n_points=5, dim=4).items():
        assert res.protocol[key] == value
    # x = v / 127.5 - 1: the uniform density on [-1, 1]^D spreads over v in [0, 255], log2(255) bits/dim
    assert bits_per_dim(4 * math.log(0.5), 4) == pytest.approx(math.log2(255))
    assert res.bits_per_dim == pytest.approx((-res.mean / 4 + math.log(127.5)) / math.log(2))
    assert res.to_dict()["log_px"] == res.log_px.tolist()


def test_evidence_batches_points_within_the_bound_and_reports_progress():
    lin = linear_generator(3, 2, seed=1)
    x, exact = ppca_points(lin, 0.5, 7, seed=3)
    sizes, calls = [], []
    lin.register_forward_hook(lambda m, i, o: sizes.append(i[0].shape[0]))
    res = estimate_evidence(lin, x, latent_dim=2, sigma=0.5, chains=8, steps=30, leapfrog=2, batch_size=24,
                            progress=lambda done, total: calls.append((done, total)))
    assert max(sizes) <= 24 and res.log_px.shape == (7,)
    assert calls[-1] == (90, 90) and len(calls) == 90  # 30 steps x 3 batches of <= 3 points

    class Bar:
        total, n = None, 0

        def update(self, k):
            self.n += k

    bar = Bar()
    estimate_evidence(lin, x, latent_dim=2, sigma=0.5, chains=8, steps=30, leapfrog=2, progress=bar)
    assert bar.n == 30 and bar.total == 30
    calls.clear()
    simulate_and_bound(lin, 3, latent_dim=2, sigma=0.5, chains=4, steps=10, leapfrog=2,
                       progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (20, 20)  # forward and reverse runs
    estimate_evidence(lin, x, latent_dim=2, sigma=0.5, chains=2, steps=5, leapfrog=1, progress=True)  # own bar
    with pytest.raises(ValueError, match="progress"):
        estimate_evidence(lin, x, latent_dim=2, sigma=0.5, chains=2, steps=5, leapfrog=1, progress="yes")


def test_evidence_rejects_bad_arguments():
    lin = linear_generator(3, 2, seed=1)
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="method"):
        estimate_evidence(lin, x, latent_dim=2, sigma=0.5, method="vi")
    with pytest.raises(ValueError, match="sigma"):
        estimate_evidence(lin, x, latent_dim=2, sigma=0.0)
    with pytest.raises(ValueError, match="chains"):
        estimate_evidence(lin, x, latent_dim=2, sigma=0.5, chains=0)
    with pytest.raises(ValueError, match="schedule"):
        estimate_evidence(lin, x, latent_dim=2, sigma=0.5, schedule="cosine", steps=5)
    with pytest.raises(ValueError, match="batch_size"):
        estimate_evidence(lin, x, latent_dim=2, sigma=0.5, steps=5, batch_size=0)


# ---------------------------------------------------------------------- sigma
def test_fit_sigma_finds_the_maximum_likelihood_width(tmp_path):
    lin = linear_generator(3, 1, seed=4)
    x, _ = ppca_points(lin, 0.3, 200, seed=8)
    grid = np.exp(np.linspace(math.log(0.05), math.log(1.0), 400))
    exact = [float(ppca_marginal(lin, s).log_prob(x.double()).mean()) for s in grid]
    best_exact = grid[int(np.argmax(exact))]
    fit = fit_sigma(lin, x, latent_dim=1, bounds=(0.05, 1.0), method="is", chains=3000, seed=0, xatol=0.01)
    assert fit.sigma == pytest.approx(best_exact, rel=0.05)
    assert fit.curve == sorted(fit.curve) and all(0.05 <= s <= 1.0 for s, _ in fit.curve)
    assert fit.result.sigma == fit.sigma and fit.result.mean == max(v for _, v in fit.curve)
    path = plot_sigma_curve(fit.curve, tmp_path / "sigma.png", best=fit.sigma)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="bounds"):
        fit_sigma(lin, x, latent_dim=1, bounds=(0.5, 0.1), method="is")
