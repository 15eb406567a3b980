"""f-divergences made executable: f, f', f'', the convex conjugate f*, the f-GAN output activation,
tail exponents, D_f between 1-D densities, and the f-divergence implied by a generator loss.

D_f(p, q) = int q(x) f(p(x) / q(x)) dx with f convex on (0, inf). Every f here is normalised to
f(1) = f'(1) = 0 (adding a (u - 1) does not change D_f, since int q (p/q - 1) = 0), so that f''
alone defines the divergence (Shannon et al. 2020, "Non-saturating GAN training as divergence
minimization", arXiv:2010.08029, Sec. 2).

f-GAN (Nowozin et al. 2016, "f-GAN", arXiv:1606.00709, Eq. 6 and Table 2): a critic output v goes
through the output activation g_f : R -> dom f*, and

    D_f(p, q) >= E_p[g_f(v)] - E_q[f*(g_f(v))],   with equality at g_f(v) = f'(p/q).

The activations of the built-in divergences are those of Nowozin et al. Table 2, shifted by
-f0'(1) for our normalised f = f0 - f0'(1)(u - 1) (f*(t) = f0*(t + f0'(1)) - f0'(1)); the f-GAN
objective E_p g - E_q f*(g) is unchanged by that shift. Divergences without a Table-2 entry (NS,
user-defined ones) use the *logit activation* g_f(v) = f'(e^v), whose optimal critic output is the
log density ratio v = log(p/q) and whose composite has the closed form f*(g_f(v)) = u f'(u) - f(u)
at u = e^v (Fenchel-Young equality).

Gradient matching (Shannon et al. 2020, Sec. 3): with the critic frozen at the optimal logit
d* = log(p/q), the gradient of a generator loss E_q[h(d*)] equals the gradient of D_f(p, q) for

    f''(u) = -h'(log u) / u^2,   equivalently   f(u) - u f'(u) = h(log u) - h(0),

which :func:`implied_divergence` turns into an :class:`FDivergence` for any h.

Tail exponents (our reconstruction of Shannon et al.'s "tail weight", methods.md section 5):
f''(u) ~ u^(-a0) as u -> 0 (model mass where the data have none: sample quality) and
f''(u) ~ u^(-ainf) as u -> inf (data the model misses: diversity). They decide whether the two
kinds of error cost a finite amount: f(0) = int_0^1 s f''(s) ds is finite iff a0 < 2 (a sample the
data do not support), f'(inf) = int_1^inf f''(s) ds is finite iff ainf > 1 (a missed mode). The
reversed divergence D_f(q, p) has f'' exponents (3 - ainf, 3 - a0), so a0 + ainf = 3 marks a
symmetric balance (JS, Hellinger); a0 + ainf > 3 weighs bad samples more than the reverse
divergence does (mode-seeking: reverse KL, Neyman, NS), a0 + ainf < 3 weighs missed data more
(mode-covering: KL, Pearson).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy import integrate
from torch import Tensor

from .registry import Registry

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
        return divergence_between(self, p, q, lower, upper, points)


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


# ----------------------------------------------------------------------------- numeric conjugate
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


# ----------------------------------------------------------------------------- implied divergence
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


# ----------------------------------------------------------------------------- D_f by quadrature
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


def divergence_between(divergence: FDivergence | str, p: Any, q: Any, lower: float = -np.inf,
                       upper: float = np.inf, points: Sequence[float] = ()) -> float:
    """D_f(p, q) = int q f(p/q) dx for 1-D densities, by scipy.integrate.quad.

    ``p`` and ``q`` are scipy.stats distributions or callables x -> density. ``points`` splits the
    range (put them at the modes of narrow densities, which an infinite-range quad can miss).
    The integrand is evaluated from log densities: as q f(u) where u = p/q <= 1 and as p f(u)/u
    where u > 1, with |log u| clipped at 300 (so that even f(u) ~ u^2 stays finite), so that
    regions where q (or p) underflows give their limits p f'(inf) (or q f(0)) instead of 0 * inf.
    """
    div = get_divergence(divergence) if isinstance(divergence, str) else divergence
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
        fu = float(div.f(torch.tensor(u, dtype=torch.float64)))
        return weight * fu if log_u <= 0 else weight * fu / u

    edges = [lower, *sorted(pt for pt in points if lower < pt < upper), upper]
    total = 0.0
    for a, b in zip(edges[:-1], edges[1:]):
        value, _ = integrate.quad(integrand, a, b, epsabs=1e-13, epsrel=1e-12, limit=500)
        total += value
    return total


# ----------------------------------------------------------------------------- table and plot
@dataclass(frozen=True)
class DivergenceRow:
    name: str
    formula: str
    curvature_at_one: float
    a0: float
    ainf: float
    bad_sample_cost_finite: bool
    missed_mode_cost_finite: bool
    behaviour: str


def divergence_row(div: FDivergence) -> DivergenceRow:
    a0, ainf = div.tail_exponents()
    return DivergenceRow(div.name, div.formula, div.curvature_at_one(), a0, ainf,
                         bad_sample_cost_finite=a0 < 2 - 1e-3, missed_mode_cost_finite=ainf > 1 + 1e-3,
                         behaviour=classify_tails(a0, ainf))


def _checked_names(names: Sequence[str] | None) -> list[str]:
    """Registered names (all by default); an unknown one is a user error naming the allowed ones."""
    from .errors import ConfigError
    from .registry import UnknownNameError

    chosen = list(names) if names else DIVERGENCES.names()
    for name in chosen:
        try:
            get_divergence(name)
        except UnknownNameError as exc:
            raise ConfigError(str(exc)) from None
    return chosen


def divergence_table(names: Sequence[str] | None = None) -> list[DivergenceRow]:
    """One :class:`DivergenceRow` per registered divergence (f''(1), tails, behaviour)."""
    return [divergence_row(get_divergence(n)) for n in _checked_names(names)]


def plot_spectra(path: str | Path, names: Sequence[str] | None = None,
                 log_u_range: float = 8.0, overwrite: bool = True) -> Path:
    """Log-log plot of f''(u) of each divergence (the 'spectrum' that defines it), to a PNG.

    With ``overwrite=False`` an existing file is an error (nothing is overwritten)."""
    from .errors import OccamError

    out = Path(path)
    if out.exists() and not overwrite:
        raise OccamError(f"{str(out)!r} exists; pass --overwrite to replace it")
    if out.suffix.lower() != ".png":
        raise OccamError(f"the spectra plot is a PNG; got {str(out)!r}")
    names = _checked_names(names)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    u = torch.logspace(-log_u_range, log_u_range, 400, base=10.0, dtype=torch.float64)
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=110)
    styles = ["-", "--", ":", "-."]  # overlapping spectra (gan/js, ns/neyman tails) stay visible
    for i, name in enumerate(names):
        div = get_divergence(name)
        a0, ainf = div.tail_exponents()
        ax.loglog(u.numpy(), div.f_second(u).numpy(), ls=styles[i % len(styles)], lw=1.6,
                  label=f"{name} (a0={a0:.2g}, ainf={ainf:.2g})")
    ax.axvline(1.0, color="grey", lw=0.5)
    ax.set_xlabel("u = p(x) / q(x)")
    ax.set_ylabel("f''(u)")
    ax.set_title("f'' spectra: left tail = sample quality, right tail = diversity", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
