"""The f-divergence implied by a generator loss E_q[h(d)] under the optimal critic
(Shannon et al. 2020, Sec. 3, gradient matching)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from .base import FDivergence, Fn
from .conjugate import _elementwise, numeric_conjugate


@dataclass
class _LogQuadrature:
    """Composite Gauss-Legendre rule on [0, 1] (panels x nodes), cached per device/dtype."""

    panels: int = 16
    nodes: int = 16
    _cache: dict = field(default_factory=dict)

    def rule(self, like: Tensor) -> tuple[Tensor, Tensor]:
        key = (like.device, like.dtype)
        if key not in self._cache:
            x, w = np.polynomial.legendre.leggauss(self.nodes)
            starts = np.arange(self.panels) / self.panels
            pts = (starts[:, None] + (x[None, :] + 1) / (2 * self.panels)).ravel()
            wts = np.tile(w / (2 * self.panels), self.panels)
            self._cache[key] = (torch.as_tensor(pts, dtype=like.dtype, device=like.device),
                                torch.as_tensor(wts, dtype=like.dtype, device=like.device))
        return self._cache[key]


_QUADRATURE = _LogQuadrature()


def implied_divergence(h: Fn, name: str = "implied", formula: str = "") -> FDivergence:
    """The f-divergence whose gradient the generator loss E_q[h(d)] follows under d* = log(p/q).

    Shannon et al. 2020, Sec. 3: f''(u) = -h'(log u) / u^2. Integrating with f(1) = f'(1) = 0 gives
    f(u) - u f'(u) = k(u) := h(log u) - h(0), i.e. (f/u)' = -k/u^2, so

        f(u) = -u * int_0^{log u} k(e^t) e^(-t) dt,    f'(u) = (f(u) - k(u)) / u,

    one integral (composite Gauss-Legendre in t = log s, differentiable in torch) and no derivative
    of h; f'' uses h' from autograd. h must be written with torch operations (e.g. softplus(-d)).
    If h is not decreasing, the implied f is not convex and is not an f-divergence (check
    :meth:`FDivergence.is_convex`; Jolicoeur-Martineau 2018 makes that point for LSGAN-type losses).
    """
    h_prime = _elementwise(torch.func.grad(h))

    def k(u: Tensor) -> Tensor:
        return h(torch.log(u)) - h(torch.zeros_like(u))

    def f(u: Tensor) -> Tensor:
        x, w = _QUADRATURE.rule(u)
        log_u = torch.log(u).unsqueeze(-1)
        t = log_u * x
        s = torch.exp(t)
        integral = (w * k(s) / s).sum(-1) * log_u.squeeze(-1)
        return -u * integral

    def f_prime(u: Tensor) -> Tensor:
        return (f(u) - k(u)) / u

    def f_second(u: Tensor) -> Tensor:
        return -h_prime(torch.log(u)) / u.pow(2)

    def conjugate_of_activation(v: Tensor) -> Tensor:
        # u f'(u) - f(u) = -k(u) at u = e^v
        return h(torch.zeros_like(v)) - h(v)

    return FDivergence(
        name, f, f_prime, f_second,
        activation=lambda v: f_prime(torch.exp(v)),
        conjugate=lambda t: numeric_conjugate(f, f_prime, f_second, t),
        conjugate_of_activation=conjugate_of_activation,
        formula=formula or "implied by a generator loss h(d)",
        source="Shannon et al. 2020, Sec. 3 (gradient matching)",
    )

