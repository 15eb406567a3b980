"""log det of a symmetric positive definite operator, densely or by stochastic Lanczos quadrature
(Ubaru, Chen & Saad 2017, "Fast estimation of tr(f(A)) via stochastic Lanczos quadrature",
Algorithm 1 and eq. 3.3; docs/methods.md section 9).

The Occam factor of a Laplace approximation needs log det H for the Hessian H of the negative
log posterior of k weights (:mod:`occamgan.bayes.laplace`). For small k the matrix is formed
from k Hessian-vector products and diagonalised (:func:`logdet_dense`). For large k only
products are affordable, and log det H = tr log H is estimated by Hutchinson's trace estimator
with Rademacher probes v (E[v v^T] = I), each quadratic form v^T log(H) v evaluated by Gauss
quadrature from m Lanczos steps started at v / |v|:

    log det H ~ (k / n_v) sum_v sum_j tau_{v,j}^2 log theta_{v,j},

theta the eigenvalues (Ritz values) of the m x m Lanczos tridiagonal and tau the first
components of its normalised eigenvectors (|v|^2 = k for Rademacher probes). Lanczos runs with
full reorthogonalisation (m is small, and without it lost orthogonality produces spurious
copies of the extreme Ritz values that bias log det); an early breakdown means the Krylov space
is invariant and the quadrature for that probe is exact.

Two errors, and how to size against them: the quadrature error of one probe falls roughly like
exp(-c m / sqrt(kappa)) with the condition number kappa (on a 200 x 200 matrix with kappa = 1000
it was 0.4% of v^T log(H) v at m = 25 and 3e-6 at m = 60), so take m a few times sqrt(kappa);
the Hutchinson error falls like 1 / sqrt(n_v) and is largest when log H is far from diagonal
(``return_stderr`` reports it).

Operators are given as a dense matrix (NumPy or torch), a ``scipy.sparse.linalg.LinearOperator``
or a callable ``v -> A v`` on float64 NumPy vectors (then ``n`` is required).
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

Matvec = Callable[[np.ndarray], np.ndarray]


def as_matvec(operator: Any, n: int | None = None) -> tuple[Matvec, int]:
    """(float64 matvec, dimension) for a matrix, a LinearOperator or a callable with ``n``."""
    if hasattr(operator, "matvec") and hasattr(operator, "shape"):
        return (lambda v: np.asarray(operator.matvec(v), dtype=np.float64).reshape(-1)), int(operator.shape[0])
    if callable(operator):
        if n is None:
            raise ValueError("a matvec callable needs its dimension n")
        return (lambda v: np.asarray(operator(v), dtype=np.float64).reshape(-1)), int(n)
    matrix = _as_matrix(operator)
    return (lambda v: matrix @ v), matrix.shape[0]


def _as_matrix(a: Any) -> np.ndarray:
    if hasattr(a, "detach"):  # a torch tensor
        a = a.detach().cpu().double().numpy()
    m = np.asarray(a, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"expected a square matrix, got shape {m.shape}")
    return m


def dense_matrix(operator: Any, n: int | None = None) -> np.ndarray:
    """The symmetrised dense matrix of ``operator`` (built from n products if it is not a matrix)."""
    if not callable(operator) and not hasattr(operator, "matvec"):
        m = _as_matrix(operator)
    else:
        matvec, n = as_matvec(operator, n)
        m = np.stack([matvec(e) for e in np.eye(n)], axis=1)
    return 0.5 * (m + m.T)


def _log_eigenvalues(values: np.ndarray, absolute: bool, what: str) -> np.ndarray:
    if absolute:
        values = np.abs(values)
    if values.min() <= 0:
        raise ValueError(f"{what} is not positive definite (smallest eigenvalue {values.min():.3g}); "
                         "its log det is undefined (absolute=True gives log |det|)")
    return np.log(values)


def logdet_dense(operator: Any, n: int | None = None, absolute: bool = False) -> float:
    """log det of a symmetric positive definite operator by eigendecomposition (float64).

    ``absolute=True`` returns log |det| (the sum of log |eigenvalue|) for an indefinite one."""
    values = np.linalg.eigvalsh(dense_matrix(operator, n))
    return float(_log_eigenvalues(values, absolute, "the matrix").sum())


def lanczos(matvec: Matvec, start: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Diagonal ``alpha`` and off-diagonal ``beta`` of the Lanczos tridiagonal of at most
    ``steps`` steps from ``start``, with full reorthogonalisation; stops early on breakdown."""
    q = start / np.linalg.norm(start)
    basis, alpha, beta = [q], [], []
    for j in range(steps):
        w = matvec(basis[-1])
        alpha.append(float(basis[-1] @ w))
        q_mat = np.stack(basis, axis=1)
        for _ in range(2):  # twice is enough (Parlett's "twice is enough")
            w = w - q_mat @ (q_mat.T @ w)
        b = float(np.linalg.norm(w))
        if j == steps - 1 or b <= 1e-12 * max(1.0, abs(alpha[-1])):
            break
        beta.append(b)
        basis.append(w / b)
    return np.asarray(alpha), np.asarray(beta)


def _quadrature(alpha: np.ndarray, beta: np.ndarray, absolute: bool) -> float:
    """e1^T log(T) e1 for the tridiagonal T(alpha, beta): sum_j tau_j^2 log theta_j."""
    t = np.diag(alpha) + np.diag(beta, 1) + np.diag(beta, -1)
    theta, vectors = np.linalg.eigh(t)
    return float((vectors[0] ** 2 * _log_eigenvalues(theta, absolute, "the Lanczos tridiagonal")).sum())


def logdet_slq(matvec: Any, n: int | None = None, probes: int = 30, lanczos_steps: int = 30, seed: int = 0,
               absolute: bool = False, return_stderr: bool = False) -> float | tuple[float, float]:
    """Stochastic Lanczos quadrature estimate of log det of an SPD operator of dimension ``n``
    from ``probes`` Rademacher probes (seeded NumPy generator) and ``lanczos_steps`` Lanczos
    steps each: probes x lanczos_steps products. With ``return_stderr`` also the standard error
    of the probe average (the Hutchinson part of the error, not the quadrature's)."""
    mv, n = as_matvec(matvec, n)
    if probes < 1 or lanczos_steps < 1:
        raise ValueError(f"probes and lanczos_steps must be at least 1, got {probes} and {lanczos_steps}")
    rng = np.random.default_rng(seed)
    samples = np.empty(probes)
    for i in range(probes):
        v = rng.choice(np.array([-1.0, 1.0]), size=n)
        alpha, beta = lanczos(mv, v, min(lanczos_steps, n))
        samples[i] = n * _quadrature(alpha, beta, absolute)
    estimate = float(samples.mean())
    if return_stderr:
        return estimate, float(samples.std(ddof=1) / math.sqrt(probes)) if probes > 1 else math.nan
    return estimate
