"""Likelihood relaxation (Filippone & Linhard 2025, Sec. "Likelihood relaxation"): the Dirac
likelihood x = G(z) becomes N(x | G(z), sigma^2 I)."""
from __future__ import annotations

from pydantic import Field
from torch import Tensor

from .. import distributed
from ..params import Params
from .base import REGULARIZERS, Regularizer


class RelaxationParams(Params):
    #: likelihood relaxation: fakes become G(z) + sigma * eps in both losses (0 = off)
    sigma: float = Field(0.0, ge=0)


class LikelihoodRelaxation(Regularizer):
    """Training fakes are G(z) + sigma * eps, eps ~ N(0, I), in both the discriminator and the
    generator losses. Never applied when sampling for evaluation; the evidence of the relaxed
    model is measured by :mod:`occamgan.bayes.evidence`."""

    def __init__(self, sigma: float):
        self.sigma = sigma

    def transform_fake(self, fake: Tensor) -> Tensor:
        # data-parallel: this rank's rows of the noise of the global batch (docs/scaling.md)
        return fake + self.sigma * distributed.randn_like(fake)


REGULARIZERS.add("sigma", lambda c: LikelihoodRelaxation(c.sigma) if c.sigma > 0 else None, params=RelaxationParams)
