"""The built-in f-divergences: KL, reverse KL, Pearson, Neyman, squared Hellinger, Jensen-Shannon,
the GAN divergence, total variation (Nowozin et al. 2016, Table 2) and the non-saturating
divergence NS (Shannon et al. 2020, Sec. 4), each registered with f, f', f'', the conjugate and
its f-GAN activation."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import LOG2, FDivergence, Fn, register_divergence
from .conjugate import numeric_conjugate


def _xlogx(u: Tensor) -> Tensor:
    return torch.special.xlogy(u, u)


def _builtin(name: str, formula: str, f: Fn, f_prime: Fn, f_second: Fn, activation: Fn,
             conjugate: Fn, conjugate_of_activation: Fn, source: str) -> None:
    register_divergence(FDivergence(name, f, f_prime, f_second, activation, conjugate,
                                    conjugate_of_activation, formula, source))


NOWOZIN = "Nowozin et al. 2016, Table 2 (activation shifted for f'(1) = 0)"

# KL(p || q): f0 = u log u, f0'(1) = 1.
_builtin(
    "kl", "u log u - (u - 1)",
    f=lambda u: _xlogx(u) - (u - 1),
    f_prime=lambda u: torch.log(u),
    f_second=lambda u: 1 / u,
    activation=lambda v: v,
    conjugate=lambda t: torch.expm1(t),
    conjugate_of_activation=lambda v: torch.expm1(v),
    source=NOWOZIN,
)
# KL(q || p): f0 = -log u, f0'(1) = -1; dom f* = (-inf, 1).
_builtin(
    "reverse_kl", "-log u + (u - 1)",
    f=lambda u: -torch.log(u) + (u - 1),
    f_prime=lambda u: 1 - 1 / u,
    f_second=lambda u: u.pow(-2),
    activation=lambda v: -torch.expm1(-v),
    conjugate=lambda t: -torch.log1p(-t),
    conjugate_of_activation=lambda v: v,
    source=NOWOZIN,
)
# Jensen-Shannon: already normalised; dom f* = (-inf, log(2)/2).
_builtin(
    "js", "1/2 [u log u - (1 + u) log((1 + u)/2)]",
    f=lambda u: 0.5 * (_xlogx(u) - (1 + u) * (torch.log1p(u) - LOG2)),
    f_prime=lambda u: 0.5 * (LOG2 + torch.log(u) - torch.log1p(u)),
    f_second=lambda u: 0.5 / (u * (1 + u)),
    activation=lambda v: 0.5 * (LOG2 - F.softplus(-v)),
    conjugate=lambda t: -0.5 * torch.log(2 - torch.exp(2 * t)),
    conjugate_of_activation=lambda v: 0.5 * (F.softplus(v) - LOG2),
    source=NOWOZIN,
)
# GAN (Goodfellow et al. 2014): f0 = u log u - (1 + u) log(1 + u), D = 2 JS (= 2 JS - log 4 before
# normalising f(1) = 0); dom f* = (-inf, log 2). g_f(v) = log 2 - softplus(-v) makes the f-GAN
# critic loss the usual BCE loss (minus log 4).
_builtin(
    "gan", "u log u - (1 + u) log(1 + u) + log 4 + log 2 (u - 1)",
    f=lambda u: _xlogx(u) - (1 + u) * torch.log1p(u) + 2 * LOG2 + LOG2 * (u - 1),
    f_prime=lambda u: LOG2 + torch.log(u) - torch.log1p(u),
    f_second=lambda u: 1 / (u * (1 + u)),
    activation=lambda v: LOG2 - F.softplus(-v),
    conjugate=lambda t: -torch.log(2 - torch.exp(t)),
    conjugate_of_activation=lambda v: F.softplus(v) - LOG2,
    source=NOWOZIN,
)
# Squared Hellinger: already normalised; dom f* = (-inf, 1).
_builtin(
    "hellinger", "(sqrt u - 1)^2",
    f=lambda u: (torch.sqrt(u) - 1).pow(2),
    f_prime=lambda u: 1 - torch.rsqrt(u),
    f_second=lambda u: 0.5 * u.pow(-1.5),
    activation=lambda v: -torch.expm1(-v),
    conjugate=lambda t: t / (1 - t),
    conjugate_of_activation=lambda v: torch.expm1(v),
    source=NOWOZIN,
)
# Pearson chi^2: already normalised. Like Nowozin et al. we use the conjugate of f extended to all
# of R (t^2/4 + t, activation identity); it is >= the conjugate restricted to u > 0, so the bound
# stays valid and is tight at t = f'(p/q) > -2.
_builtin(
    "pearson", "(u - 1)^2",
    f=lambda u: (u - 1).pow(2),
    f_prime=lambda u: 2 * (u - 1),
    f_second=lambda u: torch.full_like(u, 2.0),
    activation=lambda v: v,
    conjugate=lambda t: t.pow(2) / 4 + t,
    conjugate_of_activation=lambda v: v.pow(2) / 4 + v,
    source=NOWOZIN,
)
# Neyman chi^2: already normalised; dom f* = (-inf, 1).
_builtin(
    "neyman", "(1 - u)^2 / u",
    f=lambda u: (1 - u).pow(2) / u,
    f_prime=lambda u: 1 - u.pow(-2),
    f_second=lambda u: 2 * u.pow(-3),
    activation=lambda v: -torch.expm1(-v),
    conjugate=lambda t: 2 - 2 * torch.sqrt(1 - t),
    conjugate_of_activation=lambda v: 2 - 2 * torch.exp(-v / 2),
    source=NOWOZIN,
)


# Non-saturating divergence (Shannon et al. 2020, Sec. 4): f0 = (1 + u) log(1 + 1/u) - log 4,
# f0'(1) = log 2 - 1; D_NS(p, q) = KL(q || p) - 2 JS(p, q). dom f* = (-inf, 1 - log 2). f* needs
# the Lambert W function, so it is solved numerically; the logit activation has the closed-form
# composite f*(g(v)) = log 2 - softplus(-v): the saturating f-GAN generator loss -E f*(g(v)) is the
# non-saturating loss E softplus(-v) up to a constant.
def _ns_f(u: Tensor) -> Tensor:
    return (1 + u) * torch.log1p(1 / u) - 2 * LOG2 + (1 - LOG2) * (u - 1)


def _ns_f_prime(u: Tensor) -> Tensor:
    return torch.log1p(1 / u) - 1 / u + 1 - LOG2


def _ns_f2(u: Tensor) -> Tensor:
    return 1 / (u.pow(2) * (1 + u))


register_divergence(FDivergence(
    "ns", _ns_f, _ns_f_prime, _ns_f2,
    # f'(e^v) written so that no inf - inf appears for very negative v (the limit is -inf)
    activation=lambda v: F.softplus(-v) - torch.exp(-v) + 1 - LOG2,
    conjugate=lambda t: numeric_conjugate(_ns_f, _ns_f_prime, _ns_f2, t),
    conjugate_of_activation=lambda v: LOG2 - F.softplus(-v),
    formula="(1 + u) log(1 + 1/u) - log 4 + (1 - log 2)(u - 1)",
    source="Shannon et al. 2020, Sec. 4; logit activation",
))

