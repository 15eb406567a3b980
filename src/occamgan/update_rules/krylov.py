"""Matrix-free Krylov solvers on flat torch vectors: conjugate gradient and restarted GMRES.

Both take the matrix as a function ``matvec(v) -> A v`` (here: products with mixed second
derivatives of a game, see :mod:`occamgan.update_rules.mixed_hvp`), stay on the vectors' device
and dtype, and stop on ``||b - A x|| <= max(rtol * ||b||, atol)`` or after ``max_iter`` products
inside the iteration. SciPy's solvers would need every product copied to NumPy (CPU only, one
copy per product), so these are written out; they are short textbook algorithms:

- CG: Hestenes & Stiefel (1952); Saad, "Iterative Methods for Sparse Linear Systems" (2003),
  Ch. 6. For symmetric positive definite A (the zero-sum CGD system).
- GMRES(m): Saad & Schultz (1986); Saad (2003), Ch. 6 (Arnoldi with modified Gram-Schmidt,
  Givens rotations, restarts). For general A (the general-sum system). A small
  restart length m bounds the memory to m + 1 vectors (an unbounded Krylov basis exhausted 90 GB
  on a 150k-parameter MLP in the reference implementation; docs/methods.md section 7).

A non-finite value anywhere (right-hand side, warm start, product, step length) raises
:class:`~occamgan.errors.TrainingError` at once: the solvers never loop on NaN.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from ..errors import TrainingError

MatVec = Callable[[Tensor], Tensor]


@dataclass
class SolveResult:
    """Solution of ``A x = b`` and how it was reached."""

    solution: Tensor
    #: iterations of the method (CG steps, or Arnoldi steps summed over GMRES restarts)
    iterations: int
    #: products with A, including the one for the initial residual of a warm start
    matvecs: int
    #: final ||b - A x|| / ||b|| (0 when b = 0); CG's recursively updated residual, GMRES's
    #: residual estimate from the Givens rotations
    relative_residual: float
    converged: bool


def _check_finite(value: float | Tensor, what: str, solver: str) -> None:
    finite = math.isfinite(value) if isinstance(value, float) else bool(torch.isfinite(value).all())
    if not finite:
        raise TrainingError(
            f"{solver}: non-finite {what}; the game's gradients or second derivatives overflowed "
            "(lower the learning rates, or check the data and the losses for NaN)"
        )


def _start(matvec: MatVec, b: Tensor, x0: Tensor | None, solver: str) -> tuple[Tensor, Tensor, int]:
    """Initial iterate and its true residual r0 = b - A x0 (one product for a warm start)."""
    _check_finite(b, "right-hand side", solver)
    if x0 is None:
        return torch.zeros_like(b), b.clone(), 0
    _check_finite(x0, "warm start", solver)
    x = x0.detach().clone()
    return x, b - matvec(x), 1


def conjugate_gradient(
    matvec: MatVec,
    b: Tensor,
    x0: Tensor | None = None,
    rtol: float = 1e-5,
    atol: float = 0.0,
    max_iter: int = 200,
) -> SolveResult:
    """Solve ``A x = b`` for symmetric positive definite ``A`` by conjugate gradients.

    A warm start ``x0`` begins from the true residual ``r0 = b - A x0`` (not ``b``), so the
    answer is right whatever the starting point. Stops when ``||r|| <= max(rtol ||b||, atol)``
    (checked before the first iteration too: a good warm start costs one product) or after
    ``max_iter`` iterations, then reports ``converged=False``.
    """
    solver = "conjugate gradient"
    x, r, matvecs = _start(matvec, b, x0, solver)
    b_norm = torch.linalg.vector_norm(b).item()
    threshold = max(rtol * b_norm, atol)
    rr = torch.dot(r, r).item()
    _check_finite(rr, "initial residual", solver)
    p = r.clone()
    iterations = 0
    while math.sqrt(rr) > threshold and iterations < max_iter:
        ap = matvec(p)
        matvecs += 1
        curvature = torch.dot(p, ap).item()
        _check_finite(curvature, f"curvature p'Ap at iteration {iterations + 1}", solver)
        if curvature <= 0:
            raise TrainingError(
                f"{solver}: p'Ap = {curvature:.3g} <= 0 at iteration {iterations + 1}; the "
                "matrix is not positive definite (is the game really zero-sum?)"
            )
        alpha = rr / curvature
        x.add_(p, alpha=alpha)
        r.sub_(ap, alpha=alpha)
        rr_new = torch.dot(r, r).item()
        _check_finite(rr_new, f"residual at iteration {iterations + 1}", solver)
        p.mul_(rr_new / rr).add_(r)
        rr = rr_new
        iterations += 1
    residual = math.sqrt(rr)
    return SolveResult(x, iterations, matvecs, residual / b_norm if b_norm > 0 else 0.0, residual <= threshold)


def _givens(a: float, b: float) -> tuple[float, float]:
    """(c, s) with c a + s b = sqrt(a^2 + b^2) and -s a + c b = 0."""
    h = math.hypot(a, b)
    return (1.0, 0.0) if h == 0 else (a / h, b / h)


def _arnoldi_cycle(
    matvec: MatVec, r: Tensor, beta: float, restart: int, budget: int, threshold: float, solver: str
) -> tuple[Tensor, int, float]:
    """One GMRES(m) cycle from residual ``r`` (norm ``beta``): returns the correction to the
    iterate, the Arnoldi steps taken and the estimated residual norm."""
    basis = [r / beta]
    cols: list[list[float]] = []  # columns of the rotated (upper triangular) Hessenberg matrix
    rotations: list[tuple[float, float]] = []
    g = [beta]  # rotated right-hand side beta e1
    residual = beta
    for j in range(min(restart, budget)):
        w = matvec(basis[j])
        _check_finite(w, f"product at Arnoldi step {j + 1}", solver)
        col = []
        for v in basis:  # modified Gram-Schmidt
            coef = torch.dot(w, v).item()
            w = w - coef * v
            col.append(coef)
        h_next = torch.linalg.vector_norm(w).item()
        for i, (c, s) in enumerate(rotations):  # previous rotations on the new column
            col[i], col[i + 1] = c * col[i] + s * col[i + 1], -s * col[i] + c * col[i + 1]
        c, s = _givens(col[j], h_next)
        col[j] = c * col[j] + s * h_next
        rotations.append((c, s))
        cols.append(col)
        g.append(-s * g[j])
        g[j] *= c
        residual = abs(g[j + 1])
        _check_finite(residual, f"residual at Arnoldi step {j + 1}", solver)
        if residual <= threshold or h_next <= 1e-14 * beta:  # converged, or an invariant subspace
            break
        basis.append(w / h_next)
    steps = len(cols)
    upper = torch.zeros(steps, steps, dtype=torch.float64)
    for j, col in enumerate(cols):
        upper[: j + 1, j] = torch.tensor(col[: j + 1], dtype=torch.float64)
    rhs = torch.tensor(g[:steps], dtype=torch.float64).unsqueeze(1)
    coef = torch.linalg.solve_triangular(upper, rhs, upper=True).squeeze(1).tolist()
    correction = torch.zeros_like(r)
    for v, a in zip(basis, coef):
        correction.add_(v, alpha=a)
    return correction, steps, residual


def gmres(
    matvec: MatVec,
    b: Tensor,
    x0: Tensor | None = None,
    rtol: float = 1e-5,
    atol: float = 0.0,
    restart: int = 10,
    max_iter: int = 200,
) -> SolveResult:
    """Solve ``A x = b`` for a general square ``A`` by GMRES restarted every ``restart`` steps.

    Each cycle minimises ``||b - A x||`` over the Krylov space of its starting residual; the
    residual is recomputed exactly at each restart (one product). ``max_iter`` caps the Arnoldi
    steps summed over cycles.
    """
    solver = "GMRES"
    x, r, matvecs = _start(matvec, b, x0, solver)
    b_norm = torch.linalg.vector_norm(b).item()
    threshold = max(rtol * b_norm, atol)
    residual = torch.linalg.vector_norm(r).item()
    _check_finite(residual, "initial residual", solver)
    iterations = 0
    while residual > threshold and iterations < max_iter:
        correction, steps, estimate = _arnoldi_cycle(
            matvec, r, residual, restart, max_iter - iterations, threshold, solver
        )
        x.add_(correction)
        iterations += steps
        matvecs += steps
        if estimate <= threshold or iterations >= max_iter:
            residual = estimate
            break
        r = b - matvec(x)  # restart from the true residual
        matvecs += 1
        residual = torch.linalg.vector_norm(r).item()
        _check_finite(residual, f"residual after {iterations} steps", solver)
    return SolveResult(x, iterations, matvecs, residual / b_norm if b_norm > 0 else 0.0, residual <= threshold)
