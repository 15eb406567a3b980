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

Tail exponents (our reconstruction of Shannon et al.'s "tail weight", docs/methods.md section 5):
f''(u) ~ u^(-a0) as u -> 0 (model mass where the data have none: sample quality) and
f''(u) ~ u^(-ainf) as u -> inf (data the model misses: diversity). They decide whether the two
kinds of error cost a finite amount: f(0) = int_0^1 s f''(s) ds is finite iff a0 < 2 (a sample the
data do not support), f'(inf) = int_1^inf f''(s) ds is finite iff ainf > 1 (a missed mode). The
reversed divergence D_f(q, p) has f'' exponents (3 - ainf, 3 - a0), so a0 + ainf = 3 marks a
symmetric balance (JS, Hellinger); a0 + ainf > 3 weighs bad samples more than the reverse
divergence does (mode-seeking: reverse KL, Neyman, NS), a0 + ainf < 3 weighs missed data more
(mode-covering: KL, Pearson).

The package: ``base`` (the FDivergence type, tails, registry), ``table`` (the built-in
divergences), ``conjugate`` (numeric f* and user-defined f), ``implied`` (the divergence of a
generator loss), ``quadrature`` (D_f between 1-D densities), ``report`` (table and spectra plot).
"""
from . import table as _table  # noqa: F401  (registers the built-in divergences)
from .base import (BALANCE_TOL, DIVERGENCES, LOG2, TAIL_LOG_U, FDivergence, Fn, classify_tails,
                   divergence_between, get_divergence, register_divergence)
from .conjugate import divergence_from_f, numeric_conjugate
from .implied import implied_divergence
from .report import DivergenceRow, divergence_row, divergence_table, plot_spectra

__all__ = ["BALANCE_TOL", "DIVERGENCES", "LOG2", "TAIL_LOG_U", "DivergenceRow", "FDivergence", "Fn",
           "classify_tails", "divergence_between", "divergence_from_f", "divergence_row",
           "divergence_table", "get_divergence", "implied_divergence", "numeric_conjugate",
           "plot_spectra", "register_divergence"]
