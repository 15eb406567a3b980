"""D_f(p, q) between 1-D densities by adaptive quadrature (scipy.integrate.quad), evaluated from
log densities so that regions where one density underflows give their limits, not 0 * inf."""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np
import torch
from scipy import integrate
from torch import Tensor


def _log_density(dist: Any) -> Callable[[np.ndarray], np.ndarray]:
    """A scipy.stats-like object (its logpdf) or a callable returning densities."""
    if hasattr(dist, "logpdf"):
        return dist.logpdf
    if callable(dist):
        def log_pdf(x: np.ndarray) -> np.ndarray:
            with np.errstate(divide="ignore"):  # a zero density is log 0 = -inf, handled below
                return np.log(np.asarray(dist(x), dtype=float))

        return log_pdf
    raise TypeError("a density must be a scipy.stats distribution or a callable x -> pdf(x)")


def integrate_divergence(f: Callable[[Tensor], Tensor], p: Any, q: Any, lower: float = -np.inf,
                         upper: float = np.inf, points: Sequence[float] = ()) -> float:
    """D_f(p, q) = int q f(p/q) dx for 1-D densities, by scipy.integrate.quad.

    ``p`` and ``q`` are scipy.stats distributions or callables x -> density. ``points`` splits the
    range (put them at the modes of narrow densities, which an infinite-range quad can miss).
    The integrand is evaluated from log densities: as q f(u) where u = p/q <= 1 and as p f(u)/u
    where u > 1, with |log u| clipped at 300 (so that even f(u) ~ u^2 stays finite), so that
    regions where q (or p) underflows give their limits p f'(inf) (or q f(0)) instead of 0 * inf.
    """
    log_p, log_q = _log_density(p), _log_density(q)

    def integrand(x: float) -> float:
        lp, lq = float(log_p(x)), float(log_q(x))
        if lp == -np.inf and lq == -np.inf:
            return 0.0
        log_u = min(max(lp - lq, -300.0), 300.0)
        weight = math.exp(lq) if log_u <= 0 else math.exp(lp)
        if weight == 0.0:
            return 0.0
        u = math.exp(log_u)
        fu = float(f(torch.tensor(u, dtype=torch.float64)))
        return weight * fu if log_u <= 0 else weight * fu / u

    edges = [lower, *sorted(pt for pt in points if lower < pt < upper), upper]
    total = 0.0
    for a, b in zip(edges[:-1], edges[1:]):
        value, _ = integrate.quad(integrand, a, b, epsabs=1e-13, epsrel=1e-12, limit=500)
        total += value
    return total

