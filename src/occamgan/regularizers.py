"""Occam regularisers (Filippone & Linhard 2025, Sec. "Regularization"; methods.md section 3).

A regulariser plugs into the Game through up to three hooks:

- ``transform_fake``: change the fake samples seen by *both* losses (likelihood relaxation);
- ``discriminator_penalty``: a term added to L_D (R1, R2); within a Game its ``critic`` is the
  loss's :class:`~occamgan.objectives.critic_pass.CriticPass`, so input gradients at the real or
  fake batch reuse the loss's forward (declare those points in ``input_gradient_points``);
- ``generator_penalty``: a term added to L_G (gradient regularisation).

Each registered factory takes the ``regularizers`` config section and returns a regulariser, or
None when its knob is 0 (off).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from .objectives.base import Critic, input_gradient
from .registry import Registry


class Regularizer:
    #: points ("real", "fake") where :meth:`discriminator_penalty` takes grad_x D through
    #: ``input_gradient``; the Game shares the loss's critic pass there (objectives/critic_pass.py)
    input_gradient_points: tuple[str, ...] = ()

    def transform_fake(self, fake: Tensor) -> Tensor:
        return fake

    def discriminator_penalty(self, critic: Critic, real: Tensor, fake: Tensor) -> Tensor | None:
        return None

    def generator_penalty(self, loss_g: Tensor, generator: nn.Module) -> Tensor | None:
        return None


#: name -> factory(RegularizersConfig) -> Regularizer | None
REGULARIZERS: Registry[Callable[[Any], Regularizer | None]] = Registry("regularizer")


class LikelihoodRelaxation(Regularizer):
    """Replace the Dirac likelihood x = G(z) by N(x | G(z), sigma^2 I) (Filippone & Linhard 2025,
    Sec. "Likelihood relaxation"): training fakes are G(z) + sigma * eps, eps ~ N(0, I), in both
    the discriminator and the generator losses. Never applied when sampling for evaluation."""

    def __init__(self, sigma: float):
        self.sigma = sigma

    def transform_fake(self, fake: Tensor) -> Tensor:
        return fake + self.sigma * torch.randn_like(fake)


class GradientNormRegularizer(Regularizer):
    """L_G + lambda * sum_psi ||dL_G/dpsi||^2 (Filippone & Linhard 2025, Sec. "Gradient
    regularization"). The gradient is taken with ``create_graph=True`` so the penalty is itself
    differentiated (double backward). The authors' code built it from ``.grad`` without a graph,
    which makes the term a constant; here it changes the update direction.

    A loss computed without a graph (under ``torch.no_grad``, e.g. to log a final loss) has no
    parameter gradient to penalise: the term is then skipped and the plain L_G is returned."""

    def __init__(self, weight: float):
        self.weight = weight

    def generator_penalty(self, loss_g: Tensor, generator: nn.Module) -> Tensor | None:
        params = [p for p in generator.parameters() if p.requires_grad]
        if not loss_g.requires_grad or not params:
            return None
        grads = torch.autograd.grad(loss_g, params, create_graph=True, allow_unused=True)
        sq = sum((g.pow(2).sum() for g in grads if g is not None), loss_g.new_zeros(()))
        return self.weight * sq


class InputGradientPenalty(Regularizer):
    """R1 (at real points) or R2 (at fake points): (gamma/2) E ||grad_x D(x)||^2
    (Mescheder et al. 2018, "Which training methods for GANs do actually converge?", Eq. 9/10)."""

    def __init__(self, gamma: float, at_real: bool):
        self.gamma, self.at_real = gamma, at_real
        self.input_gradient_points = ("real",) if at_real else ("fake",)

    def discriminator_penalty(self, critic: Critic, real: Tensor, fake: Tensor) -> Tensor | None:
        _, grad = input_gradient(critic, real if self.at_real else fake)
        return 0.5 * self.gamma * grad.pow(2).sum(1).mean()


REGULARIZERS.add("sigma", lambda c: LikelihoodRelaxation(c.sigma) if c.sigma > 0 else None)
REGULARIZERS.add("grad_reg", lambda c: GradientNormRegularizer(c.grad_reg) if c.grad_reg > 0 else None)
REGULARIZERS.add("r1", lambda c: InputGradientPenalty(c.r1, at_real=True) if c.r1 > 0 else None)
REGULARIZERS.add("r2", lambda c: InputGradientPenalty(c.r2, at_real=False) if c.r2 > 0 else None)


def build_regularizers(section: Any) -> list[Regularizer]:
    """Instantiate every regulariser whose knob in the ``regularizers`` section is on."""
    built = (REGULARIZERS.get(name)(section) for name in REGULARIZERS.names())
    return [r for r in built if r is not None]


def sum_terms(terms: Sequence[Tensor | None]) -> Tensor | None:
    present = [t for t in terms if t is not None]
    return sum(present[1:], present[0]) if present else None
