"""The f-divergence type, its tail exponents and the registry of named divergences
(Shannon et al. 2020, "Non-saturating GAN training as divergence minimization", Sec. 2;
the package docstring states the conventions)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from ..registry import Registry
from .quadrature import integrate_divergence

Fn = Callable[[Tensor], Tensor]

LOG2 = math.log(2.0)
#: |log u| at which tail exponents are read off (u ~ 9e6 and 1e-7): far enough for the rational
#: f'' of the table to be within 1e-6 of their asymptotic slope, near enough that an f'' obtained
#: by differentiating an unsimplified f twice has not yet lost its digits to cancellation.
TAIL_LOG_U = 16.0
#: a0 + ainf within this of 3 counts as balanced (symmetric)
BALANCE_TOL = 0.05

# ----------------------------------------------------------------------------- the divergence type
@dataclass(frozen=True)
class FDivergence:
    """One f-divergence: normalised f and its derivatives, conjugate, f-GAN activation.

    All callables are elementwise on tensors (any dtype/device); u lives in (0, inf).
    ``conjugate_of_activation(v)`` is f*(g_f(v)), given in closed form because composing the two
    numerically loses digits (e.g. reverse KL: 1 - e^(-v) rounds to 1 for v > 37 and f* = -log(1 - t)
    becomes infinite, while the composite is just v).
    """

    name: str
    f: Fn
    f_prime: Fn
    f_second: Fn
    activation: Fn
    conjugate: Fn
    conjugate_of_activation: Fn
    formula: str = ""
    source: str = ""

    # -- scalar characteristics
    def curvature_at_one(self) -> float:
        """f''(1): near p = q, D_f ~ f''(1)/2 * Pearson chi^2 (Shannon et al. 2020, Sec. 2)."""
        return float(self.f_second(torch.tensor(1.0, dtype=torch.float64)))

    def tail_exponents(self, log_u: float = TAIL_LOG_U) -> tuple[float, float]:
        """(a0, ainf): minus the log-log slope of f'' at u = e^(-log_u) and u = e^(+log_u)."""
        return _log_slope(self.f_second, -log_u), _log_slope(self.f_second, log_u)

    def behaviour(self) -> str:
        """'mode-seeking', 'mode-covering' or 'balanced', from a0 + ainf versus 3 (module doc)."""
        return classify_tails(*self.tail_exponents())

    def is_convex(self, log_u_range: float = 20.0, n: int = 401) -> bool:
        """Whether f'' >= 0 on a log-spaced grid of u in [e^-r, e^r] (an implied 'f' may not be)."""
        u = torch.logspace(-log_u_range, log_u_range, n, base=math.e, dtype=torch.float64)
        return bool((self.f_second(u) >= 0).all())

    # -- divergence between densities
    def between(self, p: Any, q: Any, lower: float = -np.inf, upper: float = np.inf,
                points: Sequence[float] = ()) -> float:
        """D_f(p, q) for 1-D densities by adaptive quadrature (see :func:`divergence_between`)."""
        return integrate_divergence(self.f, p, q, lower, upper, points)


def classify_tails(a0: float, ainf: float, tol: float = BALANCE_TOL) -> str:
    """a0 + ainf > 3: mode-seeking, < 3: mode-covering, = 3 (within tol): balanced; the reversed
    divergence D_f(q, p) has exponents (3 - ainf, 3 - a0) (module docstring)."""
    if not (math.isfinite(a0) and math.isfinite(ainf)):
        return "undefined"
    total = a0 + ainf
    if total > 3 + tol:
        return "mode-seeking"
    if total < 3 - tol:
        return "mode-covering"
    return "balanced"


def _log_slope(fn: Fn, log_u: float, step: float = 0.25) -> float:
    """-d log fn(u) / d log u at u = e^log_u, by a central difference in log u (float64)."""
    s = torch.tensor([log_u - step, log_u + step], dtype=torch.float64)
    vals = fn(torch.exp(s))
    if not bool((vals > 0).all()) or not bool(torch.isfinite(vals).all()):
        return float("nan")
    logs = torch.log(vals)
    return float(-(logs[1] - logs[0]) / (2 * step)) + 0.0  # + 0.0 turns -0.0 into 0.0


# ----------------------------------------------------------------------------- the registry
#: name -> FDivergence
DIVERGENCES: Registry[FDivergence] = Registry("divergence")


def register_divergence(divergence: FDivergence) -> FDivergence:
    """Add a divergence to :data:`DIVERGENCES` (an f-GAN objective for it: objectives.fgan.register_fgan)."""
    DIVERGENCES.add(divergence.name, divergence)
    return divergence


def get_divergence(name: str) -> FDivergence:
    return DIVERGENCES.get(name)



def divergence_between(divergence: FDivergence | str, p: Any, q: Any, lower: float = -np.inf,
                       upper: float = np.inf, points: Sequence[float] = ()) -> float:
    """D_f(p, q) = int q f(p/q) dx for 1-D densities by adaptive quadrature (a divergence or its
    registered name; see :func:`occamgan.divergences.quadrature.integrate_divergence`)."""
    div = get_divergence(divergence) if isinstance(divergence, str) else divergence
    return integrate_divergence(div.f, p, q, lower, upper, points)
