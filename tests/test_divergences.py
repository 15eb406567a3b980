"""f-divergence toolkit: normalisation, tails, conjugates, quadrature, and gradient matching
(Shannon et al. 2020) on p = N(0, 1), q = N(1.3, 0.7^2) with the critic frozen at log(p/q)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats as st
import torch
import torch.nn.functional as F
from scipy import integrate

from occamgan.divergences import (
    DIVERGENCES,
    FDivergence,
    classify_tails,
    divergence_between,
    divergence_from_f,
    divergence_table,
    get_divergence,
    implied_divergence,
    numeric_conjugate,
    plot_spectra,
)

MU, SD = 1.3, 0.7
P, Q = st.norm(0.0, 1.0), st.norm(MU, SD)
D_NS_REFERENCE = 0.4757232724  # docs/methods.md section 5

# divergence: (f''(1), a0, ainf, behaviour); docs/methods.md section 5 table
TABLE = {
    "kl": (1.0, 1, 1, "mode-covering"),
    "reverse_kl": (1.0, 2, 2, "mode-seeking"),
    "js": (0.25, 1, 2, "balanced"),
    "gan": (0.5, 1, 2, "balanced"),
    "hellinger": (0.5, 1.5, 1.5, "balanced"),
    "pearson": (2.0, 0, 0, "mode-covering"),
    "neyman": (2.0, 3, 3, "mode-seeking"),
    "ns": (0.5, 2, 3, "mode-seeking"),
}
U_GRID = torch.logspace(-4, 4, 33, base=10.0, dtype=torch.float64)


def test_registry_holds_the_table():
    assert set(TABLE) <= set(DIVERGENCES.names())


@pytest.mark.parametrize("name", sorted(TABLE))
def test_normalised_and_derivatives_consistent(name):
    div = get_divergence(name)
    one = torch.tensor([1.0], dtype=torch.float64)
    assert abs(float(div.f(one))) < 1e-14 and abs(float(div.f_prime(one))) < 1e-14
    u = U_GRID.clone().requires_grad_(True)
    (d1,) = torch.autograd.grad(div.f(u).sum(), u)
    torch.testing.assert_close(d1, div.f_prime(U_GRID), rtol=1e-9, atol=1e-9)
    u = U_GRID.clone().requires_grad_(True)
    (d2,) = torch.autograd.grad(div.f_prime(u).sum(), u)
    torch.testing.assert_close(d2, div.f_second(U_GRID), rtol=1e-9, atol=1e-12)
    assert div.is_convex()


@pytest.mark.parametrize("name", sorted(TABLE))
def test_tail_exponents_and_curvature_match_table(name):
    curvature, a0, ainf, behaviour = TABLE[name]
    div = get_divergence(name)
    assert div.curvature_at_one() == pytest.approx(curvature, rel=1e-12)
    got0, gotinf = div.tail_exponents()
    assert got0 == pytest.approx(a0, abs=1e-3) and gotinf == pytest.approx(ainf, abs=1e-3)
    assert div.behaviour() == behaviour


def test_classify_tails_against_the_reverse_divergence():
    # the reverse of a divergence has exponents (3 - ainf, 3 - a0): behaviours swap
    assert classify_tails(1, 1) == "mode-covering" and classify_tails(2, 2) == "mode-seeking"
    assert classify_tails(1, 2) == "balanced" and classify_tails(float("nan"), 1) == "undefined"


@pytest.mark.parametrize("name", sorted(TABLE))
def test_conjugate_fenchel_young_and_composite(name):
    div = get_divergence(name)
    u = U_GRID
    t = div.f_prime(u)
    # f*(f'(u)) = u f'(u) - f(u): the supremum of t u - f(u) is attained where f'(u) = t
    torch.testing.assert_close(div.conjugate(t), u * t - div.f(u), rtol=1e-9, atol=1e-9)
    v = torch.linspace(-6, 6, 25, dtype=torch.float64)
    torch.testing.assert_close(div.conjugate_of_activation(v), div.conjugate(div.activation(v)),
                               rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("name", sorted(TABLE))
def test_conjugate_is_the_supremum(name):
    div = get_divergence(name)
    for v in (-1.5, 0.3, 2.0):
        t = float(div.activation(torch.tensor(v, dtype=torch.float64)))
        f_np = lambda s: float(div.f(torch.tensor(math.exp(s), dtype=torch.float64)))
        # brute-force sup over u = e^s on a fine grid, refined by a bounded scalar search
        grid = np.linspace(-25, 25, 5001)
        vals = [t * math.exp(s) - f_np(s) for s in grid]
        s0 = grid[int(np.argmax(vals))]
        from scipy.optimize import minimize_scalar

        res = minimize_scalar(lambda s: -(t * math.exp(s) - f_np(s)), bounds=(s0 - 0.02, s0 + 0.02),
                              method="bounded", options={"xatol": 1e-12})
        assert float(div.conjugate(torch.tensor(t, dtype=torch.float64))) == pytest.approx(-res.fun, rel=1e-7, abs=1e-9)


def test_d_ns_identity_and_reference_value():
    d_ns = divergence_between("ns", P, Q)
    kl_qp = divergence_between("kl", Q, P)
    js = divergence_between("js", P, Q)
    assert d_ns == pytest.approx(D_NS_REFERENCE, abs=1e-10)
    assert kl_qp - 2 * js == pytest.approx(D_NS_REFERENCE, abs=1e-10)


def test_quadrature_matches_closed_forms():
    kl = math.log(SD / 1.0) + (1.0 + MU**2) / (2 * SD**2) - 0.5  # KL(N(0,1) || N(MU, SD^2))
    assert divergence_between("kl", P, Q) == pytest.approx(kl, rel=1e-10)
    bc = math.sqrt(2 * SD / (1 + SD**2)) * math.exp(-(MU**2) / (4 * (1 + SD**2)))
    assert divergence_between("hellinger", P, Q) == pytest.approx(2 * (1 - bc), rel=1e-10)
    # the GAN divergence is 2 JS after normalising f(1) = 0
    assert divergence_between("gan", P, Q) == pytest.approx(2 * divergence_between("js", P, Q), rel=1e-10)
    # a callable density works like a scipy distribution
    assert divergence_between("kl", P.pdf, Q.pdf) == pytest.approx(kl, rel=1e-8)


# ----------------------------------------------------------------------------- gradient matching
def generator_loss_gradient(h, n_nodes: int = 120) -> np.ndarray:
    """grad_(mu, s) E_q[h(d*(x))], x = mu + s z, d* = log p - log q frozen at (MU, SD);
    E over z ~ N(0, 1) by Gauss-Hermite quadrature (probabilists' nodes), autograd, float64."""
    z, w = np.polynomial.hermite_e.hermegauss(n_nodes)
    z, w = torch.tensor(z), torch.tensor(w) / math.sqrt(2 * math.pi)
    theta = torch.tensor([MU, SD], dtype=torch.float64, requires_grad=True)
    x = theta[0] + theta[1] * z
    log_p = -x.pow(2) / 2
    log_q_frozen = -(x - MU).pow(2) / (2 * SD**2) - math.log(SD)  # a fixed function of x
    loss = (w * h(log_p - log_q_frozen)).sum()
    (grad,) = torch.autograd.grad(loss, theta)
    return grad.numpy()


def divergence_gradient(div: FDivergence) -> np.ndarray:
    """grad_(mu, s) D_f(p, q_theta) = int grad q_theta (f(u) - u f'(u)) dx by scipy quad."""

    def integrand(x: float, which: int) -> float:
        lq = Q.logpdf(x)
        q = math.exp(lq)
        if q == 0.0:
            return 0.0
        u = torch.tensor(math.exp(min(P.logpdf(x) - lq, 300.0)), dtype=torch.float64)
        k = float(div.f(u) - u * div.f_prime(u))
        dq = q * (x - MU) / SD**2 if which == 0 else q * ((x - MU) ** 2 / SD**3 - 1 / SD)
        return dq * k

    return np.array([integrate.quad(integrand, -np.inf, np.inf, args=(i,), epsabs=1e-14, epsrel=1e-13,
                                    limit=500)[0] for i in range(2)])


def divergence_gradient_fd(name: str, step: float = 1e-4) -> np.ndarray:
    """The same gradient by central differences of the quadrature value D_f(p, N(mu, s^2))."""
    out = []
    for i in range(2):
        lo, hi = [MU, SD], [MU, SD]
        lo[i] -= step
        hi[i] += step
        out.append((divergence_between(name, P, st.norm(*hi)) - divergence_between(name, P, st.norm(*lo))) / (2 * step))
    return np.array(out)


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


NS_LOSS = lambda d: F.softplus(-d)  # noqa: E731
MINIMAX_LOSS = lambda d: -F.softplus(d)  # noqa: E731


@pytest.mark.parametrize("h, name", [(NS_LOSS, "ns"), (MINIMAX_LOSS, "gan")])
def test_generator_loss_gradient_equals_divergence_gradient(h, name):
    reference = divergence_gradient(get_divergence(name))
    assert _rel(generator_loss_gradient(h), reference) < 1e-6
    assert _rel(divergence_gradient_fd(name), reference) < 1e-6


def test_gradient_matching_is_specific():
    # the NS loss does not follow the GAN divergence (nor minimax the NS one)
    assert _rel(generator_loss_gradient(NS_LOSS), divergence_gradient(get_divergence("gan"))) > 0.3
    assert _rel(generator_loss_gradient(MINIMAX_LOSS), divergence_gradient(get_divergence("ns"))) > 0.3


# ----------------------------------------------------------------------------- implied divergences
@pytest.mark.parametrize(
    "h, name",
    [(NS_LOSS, "ns"), (MINIMAX_LOSS, "gan"), (lambda d: -d, "reverse_kl")],
    ids=["softplus(-d)->ns", "-softplus(d)->gan", "-d->reverse_kl"],
)
def test_implied_divergence_recovers_known_f(h, name):
    implied, known = implied_divergence(h), get_divergence(name)
    u = U_GRID
    torch.testing.assert_close(implied.f(u), known.f(u), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(implied.f_prime(u), known.f_prime(u), rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(implied.f_second(u), known.f_second(u), rtol=1e-12, atol=0)
    assert implied.tail_exponents() == pytest.approx(known.tail_exponents(), abs=1e-6)
    assert implied.between(P, Q) == pytest.approx(known.between(P, Q), rel=1e-9)


def test_implied_divergence_of_lsgan_loss_is_not_convex():
    assert not implied_divergence(lambda d: (d - 1).pow(2)).is_convex()
    assert implied_divergence(NS_LOSS).is_convex()


def test_implied_fgan_composite_gives_back_the_loss():
    h = NS_LOSS
    implied = implied_divergence(h)
    v = torch.linspace(-5, 5, 11, dtype=torch.float64)
    torch.testing.assert_close(-implied.conjugate_of_activation(v), h(v) - h(torch.zeros(1, dtype=torch.float64)))
    torch.testing.assert_close(implied.conjugate_of_activation(v), implied.conjugate(implied.activation(v)),
                               rtol=1e-8, atol=1e-9)


# ----------------------------------------------------------------------------- user-defined f
def test_divergence_from_f_normalises_and_differentiates():
    user = divergence_from_f("user_kl", lambda u: u * torch.log(u) + 3.0 * u - 1.0)  # not normalised
    kl = get_divergence("kl")
    torch.testing.assert_close(user.f(U_GRID), kl.f(U_GRID), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(user.f_second(U_GRID), kl.f_second(U_GRID), rtol=1e-12, atol=0)
    assert user.tail_exponents() == pytest.approx((1.0, 1.0), abs=1e-9)
    t = torch.linspace(-3, 3, 7, dtype=torch.float64)
    torch.testing.assert_close(user.conjugate(t), kl.conjugate(t), rtol=1e-10, atol=1e-12)
    assert user.between(P, Q) == pytest.approx(kl.between(P, Q), rel=1e-9)
    assert "user_kl" not in DIVERGENCES


def test_divergence_from_f_register():
    name = "test_registered_hellinger"
    if name not in DIVERGENCES:
        divergence_from_f(name, lambda u: 2 * (torch.sqrt(u) - 1).pow(2), register=True)
    assert get_divergence(name).tail_exponents() == pytest.approx((1.5, 1.5), abs=1e-6)
    assert get_divergence(name).curvature_at_one() == pytest.approx(1.0, rel=1e-12)


def test_numeric_conjugate_has_correct_first_and_second_derivatives():
    kl = get_divergence("kl")
    t = torch.tensor([-2.0, 0.0, 1.5], dtype=torch.float64, requires_grad=True)
    value = numeric_conjugate(kl.f, kl.f_prime, kl.f_second, t)
    (d1,) = torch.autograd.grad(value.sum(), t, create_graph=True)
    (d2,) = torch.autograd.grad(d1.sum(), t)
    exact = torch.exp(t.detach())  # f*(t) = e^t - 1
    torch.testing.assert_close(value.detach(), exact - 1, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(d1.detach(), exact, rtol=1e-10, atol=0)
    torch.testing.assert_close(d2, exact, rtol=1e-8, atol=0)


# ----------------------------------------------------------------------------- table and plot
def test_table_and_plot(tmp_path):
    rows = {r.name: r for r in divergence_table(sorted(TABLE))}
    assert rows["reverse_kl"].bad_sample_cost_finite is False and rows["reverse_kl"].missed_mode_cost_finite is True
    assert rows["kl"].bad_sample_cost_finite is True and rows["kl"].missed_mode_cost_finite is False
    assert rows["ns"].behaviour == "mode-seeking"
    out = plot_spectra(tmp_path / "spectra.png", names=["kl", "ns"])
    assert out.stat().st_size > 1000 and out.read_bytes()[:4] == b"\x89PNG"


def test_cli_divergences_table_plot_and_refusals(tmp_path):
    from typer.testing import CliRunner

    import occamgan.commands  # noqa: F401  (registers the commands)
    from occamgan.cli import app

    out = tmp_path / "spectra.png"
    result = CliRunner().invoke(app, ["divergences", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "reverse_kl" in result.output and "mode-seeking" in result.output and "mode-covering" in result.output
    assert out.read_bytes()[:4] == b"\x89PNG"
    size = out.stat().st_size
    again = CliRunner().invoke(app, ["divergences", "--out", str(out), "-n", "kl"])
    assert again.exit_code == 2 and "exists" in again.output and out.stat().st_size == size
    unknown = CliRunner().invoke(app, ["divergences", "-n", "kll"])
    assert unknown.exit_code == 2 and "did you mean 'kl'" in unknown.output
