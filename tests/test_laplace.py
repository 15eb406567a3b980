"""Laplace / MDL evidence over weights (bayes/laplace.py) and log det estimators
(diagnostics/logdet.py), against closed forms (docs/methods.md section 9)."""
import math

import numpy as np
import pytest
import torch
from scipy.sparse.linalg import aslinearoperator

from occamgan.bayes.laplace import gan_laplace_evidence, laplace_evidence
from occamgan.diagnostics.logdet import dense_matrix, lanczos, logdet_dense, logdet_slq


def random_spd(n: int, seed: int, low: float = 0.1, high: float = 100.0) -> np.ndarray:
    """Q diag(lambda) Q^T with log-uniform eigenvalues in [low, high] and a random rotation Q."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    lam = np.exp(rng.uniform(math.log(low), math.log(high), n))
    return (q * lam) @ q.T


def blr_problem(n: int, m: int, alpha: float, beta: float, seed: int):
    """Bayesian linear regression y = Phi w + e, w ~ N(0, 1/alpha), e ~ N(0, 1/beta): the data,
    the posterior mean and the exact log evidence (Bishop 2006, eq. 3.86)."""
    g = torch.Generator().manual_seed(seed)
    phi = torch.randn(n, m, generator=g, dtype=torch.float64)
    w_true = torch.randn(m, generator=g, dtype=torch.float64) / math.sqrt(alpha)
    y = phi @ w_true + torch.randn(n, generator=g, dtype=torch.float64) / math.sqrt(beta)
    a = alpha * torch.eye(m, dtype=torch.float64) + beta * phi.T @ phi
    mean = beta * torch.linalg.solve(a, phi.T @ y)
    e_m = beta / 2 * ((y - phi @ mean) ** 2).sum() + alpha / 2 * (mean ** 2).sum()
    exact = (m / 2 * math.log(alpha) + n / 2 * math.log(beta) - e_m - 0.5 * torch.logdet(a)
             - n / 2 * math.log(2 * math.pi))
    return phi, y, mean, float(exact)


def blr_neg_log_lik(phi, y, w, beta):
    n = y.shape[0]
    return beta / 2 * ((y - phi @ w) ** 2).sum() - n / 2 * math.log(beta) + n / 2 * math.log(2 * math.pi)


# ---------------------------------------------------------------------- log det
def test_dense_logdet_matches_numpy_for_every_input_kind():
    a = random_spd(30, seed=0)
    expected = np.linalg.slogdet(a)[1]
    assert logdet_dense(a) == pytest.approx(expected, rel=1e-12)
    assert logdet_dense(torch.from_numpy(a)) == pytest.approx(expected, rel=1e-12)
    assert logdet_dense(lambda v: a @ v, n=30) == pytest.approx(expected, rel=1e-12)
    assert logdet_dense(aslinearoperator(a)) == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(dense_matrix(lambda v: a @ v, 30), a, atol=1e-12)


def test_dense_logdet_refuses_an_indefinite_matrix_unless_absolute():
    a = np.diag([2.0, -3.0, 0.5])
    with pytest.raises(ValueError, match="not positive definite"):
        logdet_dense(a)
    assert logdet_dense(a, absolute=True) == pytest.approx(math.log(3.0))


def test_slq_logdet_matches_dense_on_a_random_spd_matrix():
    a = random_spd(200, seed=1)
    exact = logdet_dense(a)
    estimate, stderr = logdet_slq(lambda v: a @ v, 200, probes=200, lanczos_steps=25, seed=0, return_stderr=True)
    # random eigenvectors make log(A) dense, the hardest case for Hutchinson: ~40 nats per probe
    assert abs(estimate - exact) <= 0.02 * abs(exact)
    assert abs(estimate - exact) <= 3 * stderr  # the error is the probes' noise, not quadrature bias
    assert 0 < stderr < 0.015 * abs(exact)


def test_lanczos_quadrature_of_one_quadratic_form_is_accurate():
    a = random_spd(200, seed=4)
    lam, q = np.linalg.eigh(a)
    v = np.random.default_rng(0).choice([-1.0, 1.0], size=200)
    exact = float(((q.T @ v) ** 2 * np.log(lam)).sum())  # v^T log(A) v
    # Gauss quadrature of log converges like exp(-c m / sqrt(cond)): cond = 1000 needs m ~ 60
    estimate = logdet_slq(lambda u: a @ u, 200, probes=1, lanczos_steps=60, seed=0)
    rng_v = np.random.default_rng(0).choice([-1.0, 1.0], size=200)
    assert np.array_equal(rng_v, v)  # the same probe as logdet_slq's first
    assert estimate == pytest.approx(exact, rel=1e-4)


def test_slq_is_deterministic_under_a_seed_and_exact_with_a_full_krylov_space():
    a = random_spd(12, seed=2)
    assert logdet_slq(a, probes=5, lanczos_steps=8, seed=3) == logdet_slq(a, probes=5, lanczos_steps=8, seed=3)
    # with lanczos_steps >= n every quadratic form v^T log(A) v is exact: only Hutchinson noise
    # remains, and for a diagonal matrix Rademacher probes have none
    d = np.diag(np.linspace(0.5, 4.0, 12))
    assert logdet_slq(d, probes=3, lanczos_steps=12, seed=0) == pytest.approx(logdet_dense(d), rel=1e-10)


def test_lanczos_stops_on_an_invariant_subspace():
    alpha, beta = lanczos(lambda v: 2.0 * v, np.ones(6), steps=5)
    assert alpha == pytest.approx([2.0]) and len(beta) == 0


# ---------------------------------------------------------------------- Laplace evidence
@pytest.mark.parametrize("n, m", [(40, 6), (25, 12)])
def test_laplace_is_exact_for_bayesian_linear_regression(n, m):
    alpha, beta = 2.0, 25.0
    phi, y, mean, exact = blr_problem(n, m, alpha, beta, seed=n + m)
    w = mean.clone().requires_grad_(True)
    res = laplace_evidence(blr_neg_log_lik(phi, y, w, beta), [w], prior_precision=alpha, logdet="dense")
    assert res.log_evidence == pytest.approx(exact, rel=1e-8)
    assert res.k == m and res.logdet_method == "dense" and not res.surrogate
    assert res.grad_norm < 1e-8  # the posterior mean is the mode
    assert res.log_evidence == pytest.approx(res.log_likelihood + res.occam_factor, rel=1e-12)


def test_laplace_with_stochastic_lanczos_is_within_one_percent():
    alpha, beta = 1.0, 10.0
    phi, y, mean, exact = blr_problem(150, 60, alpha, beta, seed=7)
    w = mean.clone().requires_grad_(True)
    res = laplace_evidence(blr_neg_log_lik(phi, y, w, beta), [w], prior_precision=alpha, logdet="slq",
                           probes=30, lanczos_steps=30, seed=0)
    assert res.logdet_method == "slq"
    assert abs(res.log_evidence - exact) <= 0.01 * abs(exact)


def test_laplace_away_from_the_mode_reports_the_gradient():
    phi, y, mean, _ = blr_problem(30, 4, 1.0, 10.0, seed=3)
    w = (mean + 0.3).requires_grad_(True)
    res = laplace_evidence(blr_neg_log_lik(phi, y, w, 10.0), [w], prior_precision=1.0)
    assert res.grad_norm > 1.0


def test_laplace_rejects_bad_arguments_and_indefinite_hessians():
    w = torch.tensor([0.5, -0.2], dtype=torch.float64, requires_grad=True)
    saddle = w[0] ** 2 - 3 * w[1] ** 2  # Hessian diag(2, -6), + alpha I = diag(3, -5)
    with pytest.raises(ValueError, match="logdet"):
        laplace_evidence(saddle, [w], prior_precision=1.0, logdet="cholesky")
    with pytest.raises(ValueError, match="prior_precision"):
        laplace_evidence(saddle, [w], prior_precision=0.0)
    with pytest.raises(ValueError, match="not positive definite"):
        laplace_evidence(saddle, [w], prior_precision=1.0)
    res = laplace_evidence(saddle, [w], prior_precision=1.0, indefinite="abs")
    assert res.logdet == pytest.approx(math.log(15.0)) and "log |det H|" in res.approximation


def test_gan_surrogate_scales_the_loss_by_the_number_of_data_points():
    torch.manual_seed(0)
    gen = torch.nn.Linear(3, 2).double()
    z = torch.randn(16, 3, dtype=torch.float64)
    target = torch.randn(16, 2, dtype=torch.float64)
    loss = ((gen(z) - target) ** 2).sum(1).mean()  # a quadratic stand-in for L_G
    params = list(gen.parameters())
    res = gan_laplace_evidence(loss, params, n_data=500, prior_precision=3.0)
    assert res.surrogate and "GAN surrogate" in res.approximation
    # closed form: the loss is quadratic in the weights, Hessian of N * loss = N * 2 E[u u^T] per output
    u = torch.cat([z, torch.ones(16, 1, dtype=torch.float64)], 1)
    block = 500 * 2 * u.T @ u / 16 + 3.0 * torch.eye(4, dtype=torch.float64)
    assert res.logdet == pytest.approx(2 * float(torch.logdet(block)), rel=1e-10)
    assert res.log_likelihood == pytest.approx(-500 * float(loss.detach()), rel=1e-12)
    with pytest.raises(ValueError, match="n_data"):
        gan_laplace_evidence(loss, params, n_data=0, prior_precision=1.0)
