"""The convex conjugate f*(t) solved numerically, and f-divergences from f alone (user-defined f,
derivatives by torch.func, the logit activation of the package docstring)."""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from .base import Fn, FDivergence, register_divergence


def numeric_conjugate(f: Fn, f_prime: Fn, f_second: Fn, t: Tensor, log_u_bound: float = 60.0,
                      iterations: int = 100) -> Tensor:
    """f*(t) = sup_u t u - f(u) = t u* - f(u*) with f'(u*) = t, for t in the range of f'.

    u* is found by bisection on s = log u in [-B, B] (f' increases since f is convex), then one
    Newton step is taken *with* autograd: u = u0 + (t - f'(u0)) / f''(u0) equals u0 in value but
    carries du/dt = 1/f''(u*), so f*(t) has the right first (u*) and second (1/f''(u*)) derivatives
    and can sit inside a loss that is differentiated twice. t outside the range of f' gives the
    value at the bound (the supremum is then infinite or at u -> 0).
    """
    with torch.no_grad():
        lo = torch.full_like(t, -log_u_bound)
        hi = torch.full_like(t, log_u_bound)
        for _ in range(iterations):
            mid = (lo + hi) / 2
            below = f_prime(torch.exp(mid)) < t
            lo = torch.where(below, mid, lo)
            hi = torch.where(below, hi, mid)
        u0 = torch.exp((lo + hi) / 2)
    u = u0 + (t - f_prime(u0)) / f_second(u0)
    return t * u - f(u)


# ----------------------------------------------------------------------------- user-defined f
def _elementwise(scalar_fn: Callable[[Tensor], Tensor]) -> Fn:
    """Apply a 0-dim function elementwise with vmap (keeps autograd through the result)."""
    mapped = torch.func.vmap(scalar_fn)

    def apply(x: Tensor) -> Tensor:
        return mapped(x.reshape(-1)).reshape(x.shape)

    return apply


def _logit_activation(f: Fn, f_prime: Fn) -> tuple[Fn, Fn]:
    """g(v) = f'(e^v) and f*(g(v)) = u f'(u) - f(u) at u = e^v (Fenchel-Young equality)."""

    def activation(v: Tensor) -> Tensor:
        return f_prime(torch.exp(v))

    def conjugate_of_activation(v: Tensor) -> Tensor:
        u = torch.exp(v)
        return u * f_prime(u) - f(u)

    return activation, conjugate_of_activation


def divergence_from_f(name: str, f: Fn, formula: str = "", register: bool = False) -> FDivergence:
    """An :class:`FDivergence` from f alone (written with torch operations).

    f is normalised to f(u) - f(1) - f'(1)(u - 1); f' and f'' come from automatic differentiation
    (torch.func), the conjugate from :func:`numeric_conjugate`, and the f-GAN activation is the logit
    activation f'(e^v). ``register=True`` adds it to :data:`DIVERGENCES`.
    """
    d1_raw = _elementwise(torch.func.grad(f))
    d2_raw = _elementwise(torch.func.grad(torch.func.grad(f)))
    one = torch.tensor(1.0, dtype=torch.float64)
    f_at_1, slope_at_1 = float(f(one)), float(d1_raw(one))

    def f_norm(u: Tensor) -> Tensor:
        return f(u) - f_at_1 - slope_at_1 * (u - 1)

    def f_prime(u: Tensor) -> Tensor:
        return d1_raw(u) - slope_at_1

    activation, conj_act = _logit_activation(f_norm, f_prime)
    div = FDivergence(
        name, f_norm, f_prime, d2_raw, activation,
        conjugate=lambda t: numeric_conjugate(f_norm, f_prime, d2_raw, t),
        conjugate_of_activation=conj_act,
        formula=formula or "user-defined f", source="user-defined; logit activation",
    )
    return register_divergence(div) if register else div

