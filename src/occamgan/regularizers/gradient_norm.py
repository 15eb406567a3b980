"""Gradient regularisation of the generator (Filippone & Linhard 2025, Sec. "Gradient
regularization"): L_G + lambda * sum_psi ||dL_G/dpsi||^2, a flat-minimum (Occam) penalty."""
from __future__ import annotations

import torch
from pydantic import Field
from torch import Tensor, nn

from .. import distributed
from ..params import Params
from .base import REGULARIZERS, Regularizer


class GradientNormParams(Params):
    #: gradient regularisation lambda * sum ||dL_G / dpsi||^2 (double backward; 0 = off)
    grad_reg: float = Field(0.0, ge=0)


class GradientNormRegularizer(Regularizer):
    """The gradient is taken with ``create_graph=True`` so the penalty is itself differentiated
    (double backward). The authors' code built it from ``.grad`` without a graph, which makes the
    term a constant; here it changes the update direction.

    A loss computed without a graph (under ``torch.no_grad``, e.g. to log a final loss) has no
    parameter gradient to penalise: the term is then skipped and the plain L_G is returned."""

    penalises_generator = True

    def __init__(self, weight: float):
        self.weight = weight

    def generator_penalty(self, loss_g: Tensor, generator: nn.Module) -> Tensor | None:
        params = [p for p in generator.parameters() if p.requires_grad]
        if not loss_g.requires_grad or not params:
            return None
        grads = torch.autograd.grad(loss_g, params, create_graph=True, allow_unused=True)
        # data-parallel: the penalty of the global-batch gradient, averaged inside the graph
        grads = distributed.average_differentiable(grads)
        sq = sum((g.pow(2).sum() for g in grads if g is not None), loss_g.new_zeros(()))
        return self.weight * sq


REGULARIZERS.add("grad_reg", lambda c: GradientNormRegularizer(c.grad_reg) if c.grad_reg > 0 else None,
                 params=GradientNormParams)
