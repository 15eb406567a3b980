"""R1 and R2: zero-centred penalties on the critic's input gradient at real (R1) or fake (R2)
points, (gamma/2) E ||grad_x D(x)||^2 (Mescheder et al. 2018, "Which training methods for GANs do
actually converge?", Eq. 9/10; R3GAN uses both with the relativistic pairing loss)."""
from __future__ import annotations

from pydantic import Field
from torch import Tensor

from ..objectives.base import Critic, input_gradient
from ..params import Params
from .base import REGULARIZERS, Regularizer


class R1Params(Params):
    #: R1 weight gamma: (gamma/2) E ||grad_x D(x)||^2 at real points (0 = off)
    r1: float = Field(0.0, ge=0)


class R2Params(Params):
    #: R2 weight gamma: the same penalty at fake points (0 = off)
    r2: float = Field(0.0, ge=0)


class InputGradientPenalty(Regularizer):
    needs_discriminator = True

    def __init__(self, gamma: float, at_real: bool):
        self.gamma, self.at_real = gamma, at_real
        self.input_gradient_points = ("real",) if at_real else ("fake",)

    def discriminator_penalty(self, critic: Critic, real: Tensor, fake: Tensor) -> Tensor | None:
        _, grad = input_gradient(critic, real if self.at_real else fake)
        return 0.5 * self.gamma * grad.pow(2).sum(1).mean()


REGULARIZERS.add("r1", lambda c: InputGradientPenalty(c.r1, at_real=True) if c.r1 > 0 else None, params=R1Params)
REGULARIZERS.add("r2", lambda c: InputGradientPenalty(c.r2, at_real=False) if c.r2 > 0 else None, params=R2Params)
