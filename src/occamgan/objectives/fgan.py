"""f-GAN objectives ``fgan_<name>`` for every registered f-divergence (Nowozin et al. 2016,
"f-GAN: training generative neural samplers using variational divergence minimization", Eq. 6).

The critic output v goes through the divergence's output activation g_f (Table 2, or the logit
activation f'(e^v) for divergences without an entry, see :mod:`occamgan.divergences`):

    L_D = -(mean g_f(v_real) - mean f*(g_f(v_fake)))      (minus the variational lower bound)
    L_G = -mean f*(g_f(v_fake))                           (saturating: the game is zero-sum)

At the optimal critic g_f(v) = f'(p/q) the bound equals D_f(p, q), and L_G then follows the
gradient of D_f itself (with h(v) = -f*(g_f(v)), the implied f'' of Shannon et al. 2020 is f'').
A different generator loss can be chosen with ``objective.generator_loss``.

Divergences registered later get an objective with :func:`register_fgan`.
"""
from __future__ import annotations

from typing import Any

from torch import Tensor

from ..divergences import DIVERGENCES, FDivergence, register_divergence
from .base import OBJECTIVES, Objective


class FGAN(Objective):
    """The f-GAN game for one f-divergence."""

    zero_sum = True

    def __init__(self, divergence: FDivergence):
        self.divergence = divergence

    def variational_bound(self, d_real: Tensor, d_fake: Tensor) -> Tensor:
        """mean g_f(v_real) - mean f*(g_f(v_fake)) <= D_f(p, q) (Nowozin et al. Eq. 6)."""
        div = self.divergence
        return div.activation(d_real).mean() - div.conjugate_of_activation(d_fake).mean()

    def discriminator_loss(self, d_real: Tensor, d_fake: Tensor) -> Tensor:
        return -self.variational_bound(d_real, d_fake)

    def generator_loss(self, d_real: Tensor | None, d_fake: Tensor) -> Tensor:
        return -self.divergence.conjugate_of_activation(d_fake).mean()

    def __repr__(self) -> str:
        return f"FGAN({self.divergence.name})"


def fgan_name(divergence: FDivergence | str) -> str:
    return f"fgan_{divergence if isinstance(divergence, str) else divergence.name}"


def register_fgan(divergence: FDivergence) -> str:
    """Register the objective ``fgan_<name>`` (and the divergence, if it is not yet registered);
    returns the objective's name, usable as ``objective.name`` in a config."""
    if divergence.name not in DIVERGENCES:
        register_divergence(divergence)
    name = fgan_name(divergence)

    def factory(cfg: Any = None) -> FGAN:
        return FGAN(divergence)

    OBJECTIVES.add(name, factory)
    return name


for _name in DIVERGENCES.names():
    register_fgan(DIVERGENCES.get(_name))
