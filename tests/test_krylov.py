"""Krylov solvers (CG, restarted GMRES) and mixed Hessian-vector products against dense algebra."""
import math

import pytest
import torch
from torch import nn

from occamgan.errors import TrainingError
from occamgan.update_rules.krylov import conjugate_gradient, gmres
from occamgan.update_rules.mixed_hvp import flatten, gradients_with_graph, mixed_product, unflatten

F64 = torch.float64


def spd_matrix(n: int, seed: int, cond_scale: float = 0.3) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    m = torch.randn(n, n, generator=g, dtype=F64)
    return torch.eye(n, dtype=F64) + cond_scale * m @ m.T


def general_matrix(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 2.0 * torch.eye(n, dtype=F64) + torch.randn(n, n, generator=g, dtype=F64) / math.sqrt(n)


def rhs(n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=F64)


# ---------------------------------------------------------------------------------------- CG
def test_cg_matches_dense_solve():
    a, b = spd_matrix(40, 0), rhs(40, 1)
    res = conjugate_gradient(lambda v: a @ v, b, rtol=1e-14, max_iter=200)
    exact = torch.linalg.solve(a, b)
    assert res.converged
    assert torch.allclose(res.solution, exact, rtol=0, atol=1e-11)
    assert 0 < res.relative_residual <= 1e-14
    assert res.iterations <= 60  # ~n in exact arithmetic; a little slack for rounding
    assert res.matvecs == res.iterations  # cold start: no product for the initial residual


def test_cg_warm_start_uses_true_initial_residual():
    a, b = spd_matrix(30, 2), rhs(30, 3)
    exact = torch.linalg.solve(a, b)
    # from the exact solution: r0 = b - A x0 = 0, so no iteration and one product
    res = conjugate_gradient(lambda v: a @ v, b, x0=exact.clone(), rtol=1e-10)
    assert res.iterations == 0 and res.matvecs == 1 and res.converged
    assert torch.equal(res.solution, exact)
    # from an arbitrary start the answer is still A^-1 b (r0 = b would give A^-1 b + x0)
    x0 = 5.0 * rhs(30, 4)
    res = conjugate_gradient(lambda v: a @ v, b, x0=x0, rtol=1e-13, max_iter=200)
    assert torch.allclose(res.solution, exact, rtol=0, atol=1e-10)
    assert res.matvecs == res.iterations + 1
    # the warm start is not modified in place
    assert torch.equal(x0, 5.0 * rhs(30, 4))


def test_cg_warm_start_near_solution_saves_iterations():
    a, b = spd_matrix(60, 5, cond_scale=0.05), rhs(60, 6)  # condition number ~12
    exact = torch.linalg.solve(a, b)
    cold = conjugate_gradient(lambda v: a @ v, b, rtol=1e-10, max_iter=500)
    warm = conjugate_gradient(lambda v: a @ v, b, x0=exact + 1e-6 * rhs(60, 7), rtol=1e-10, max_iter=500)
    assert warm.converged and cold.converged
    assert warm.iterations < 0.6 * cold.iterations


def test_cg_relative_tolerance_and_cap():
    a, b = spd_matrix(50, 8, cond_scale=5.0), rhs(50, 9)
    loose = conjugate_gradient(lambda v: a @ v, b, rtol=1e-3, max_iter=500)
    tight = conjugate_gradient(lambda v: a @ v, b, rtol=1e-12, max_iter=500)
    true_residual = torch.linalg.vector_norm(b - a @ loose.solution) / torch.linalg.vector_norm(b)
    assert loose.converged and true_residual <= 1.01e-3
    assert loose.iterations < tight.iterations
    capped = conjugate_gradient(lambda v: a @ v, b, rtol=1e-12, max_iter=3)
    assert capped.iterations == 3 and not capped.converged
    assert capped.relative_residual > 1e-12


def test_cg_absolute_tolerance_stops_immediately():
    a = spd_matrix(10, 10)
    b = 1e-30 * rhs(10, 11)
    res = conjugate_gradient(lambda v: a @ v, b, rtol=1e-14, atol=1e-20)
    assert res.iterations == 0 and res.converged
    assert torch.equal(res.solution, torch.zeros_like(b))


def test_cg_zero_rhs():
    a = spd_matrix(5, 12)
    res = conjugate_gradient(lambda v: a @ v, torch.zeros(5, dtype=F64))
    assert res.iterations == 0 and res.relative_residual == 0.0


@pytest.mark.parametrize("where", ["rhs", "product", "warm_start"])
def test_cg_non_finite_raises(where):
    a, b = spd_matrix(8, 13), rhs(8, 14)
    calls = []

    def matvec(v):
        calls.append(1)
        out = a @ v
        return out * float("nan") if where == "product" else out

    if where == "rhs":
        b = b.clone()
        b[3] = float("inf")
    x0 = torch.full_like(b, float("nan")) if where == "warm_start" else None
    with pytest.raises(TrainingError, match="non-finite"):
        conjugate_gradient(matvec, b, x0=x0, rtol=1e-12, max_iter=10_000)
    assert len(calls) <= 1  # stops at the first bad value: no hang


def test_cg_refuses_indefinite_matrix():
    a = torch.diag(torch.tensor([1.0, -1.0], dtype=F64))
    with pytest.raises(TrainingError, match="positive definite"):
        conjugate_gradient(lambda v: a @ v, torch.tensor([0.0, 1.0], dtype=F64))


# ---------------------------------------------------------------------------------------- GMRES
@pytest.mark.parametrize("restart", [2, 5, 50])
def test_gmres_matches_dense_solve(restart):
    a, b = general_matrix(40, 20), rhs(40, 21)
    res = gmres(lambda v: a @ v, b, rtol=1e-12, restart=restart, max_iter=2000)
    assert res.converged
    assert torch.allclose(res.solution, torch.linalg.solve(a, b), rtol=0, atol=1e-10)
    true_residual = torch.linalg.vector_norm(b - a @ res.solution) / torch.linalg.vector_norm(b)
    assert true_residual <= 1.01e-12
    cycles = math.ceil(res.iterations / restart)
    assert res.matvecs == res.iterations + cycles - 1  # one true-residual product per restart


def test_gmres_full_space_converges_within_dimension():
    a, b = general_matrix(25, 22), rhs(25, 23)
    res = gmres(lambda v: a @ v, b, rtol=1e-13, restart=25, max_iter=25)
    assert res.converged and res.iterations <= 25


def test_gmres_identity_is_one_step():
    b = rhs(7, 24)
    res = gmres(lambda v: v, b, rtol=1e-14, restart=5)
    assert res.iterations == 1
    assert torch.allclose(res.solution, b, rtol=0, atol=1e-15)


def test_gmres_warm_start_and_cap():
    a, b = general_matrix(30, 25), rhs(30, 26)
    exact = torch.linalg.solve(a, b)
    res = gmres(lambda v: a @ v, b, x0=exact.clone(), rtol=1e-10)
    assert res.iterations == 0 and res.matvecs == 1
    res = gmres(lambda v: a @ v, b, x0=rhs(30, 27), rtol=1e-12, restart=4, max_iter=1000)
    assert torch.allclose(res.solution, exact, rtol=0, atol=1e-10)
    capped = gmres(lambda v: a @ v, b, rtol=1e-14, restart=4, max_iter=6)
    assert capped.iterations == 6 and not capped.converged


def test_gmres_non_finite_raises():
    a, b = general_matrix(6, 28), rhs(6, 29)
    with pytest.raises(TrainingError, match="non-finite"):
        gmres(lambda v: a @ v * float("nan"), b, max_iter=10_000)


# ---------------------------------------------------------------------------------------- mixed HVP
class Layer(nn.Module):
    def __init__(self, n_in: int, n_out: int, seed: int):
        super().__init__()
        torch.manual_seed(seed)
        self.unused = nn.Parameter(torch.randn(3, dtype=F64))  # never reached by the loss
        self.lin = nn.Linear(n_in, n_out).double()

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return self.lin(v)


def test_mixed_product_matches_dense_hessian_and_zero_fills():
    torch.manual_seed(0)
    gen, crit = Layer(2, 3, 1), Layer(3, 1, 2)
    z, real = torch.randn(16, 2, dtype=F64), torch.randn(16, 3, dtype=F64)
    x, y = list(gen.parameters()), list(crit.parameters())  # [unused, lin.weight, lin.bias]
    names_x = [n for n, _ in gen.named_parameters()]
    names_y = [n for n, _ in crit.named_parameters()]

    def loss_of(theta_x, theta_y):
        px = dict(zip(names_x, unflatten(theta_x, x)))
        py = dict(zip(names_y, unflatten(theta_y, y)))
        fake = torch.tanh(torch.func.functional_call(gen, px, (z,)))
        d_fake = torch.func.functional_call(crit, py, (fake,))
        d_real = torch.func.functional_call(crit, py, (real,))
        # WGAN-like: the critic's last bias cancels, so its gradient is a constant (no graph)
        return d_fake.mean() - d_real.mean()

    fake = torch.tanh(gen(z))
    d_fake, d_real = crit(fake), crit(real)
    grads = gradients_with_graph(d_fake.mean() - d_real.mean(), x + y)
    g_x, g_y = grads[: len(x)], grads[len(x):]
    assert not g_y[2].requires_grad and torch.equal(g_y[2], torch.zeros(1, dtype=F64))
    hess = torch.autograd.functional.hessian(loss_of, (flatten(x), flatten(y)))
    d_xy, d_yx = hess[0][1], hess[1][0]
    v = torch.randn(flatten(y).numel(), dtype=F64)
    u = torch.randn(flatten(x).numel(), dtype=F64)
    assert torch.allclose(mixed_product(g_y, x, v), d_xy @ v, rtol=1e-12, atol=1e-13)
    assert torch.allclose(mixed_product(g_x, y, u), d_yx @ u, rtol=1e-12, atol=1e-13)
    # the unused parameters get exact zeros, not None, and the product can be repeated
    assert torch.equal(mixed_product(g_y, x, v)[:3], torch.zeros(3, dtype=F64))
    assert torch.equal(mixed_product(g_x, y, u)[:3], torch.zeros(3, dtype=F64))
    assert torch.equal(flatten(g_y[:1]), torch.zeros(3, dtype=F64))


def test_mixed_product_of_constant_gradient_is_zero():
    a = nn.Parameter(torch.tensor([2.0], dtype=F64))
    b = nn.Parameter(torch.tensor([3.0], dtype=F64))
    loss = a.sum() + b.sum()  # separable and linear: both gradients constant
    g_a, _ = gradients_with_graph(loss, [a, b])
    out = mixed_product([g_a], [b], torch.ones(1, dtype=F64))
    assert torch.equal(out, torch.zeros(1, dtype=F64))
