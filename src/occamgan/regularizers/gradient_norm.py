"""Gradient regularisation of the generator (Filippone & Linhard 2025, Sec. "Gradient
regularization"): L_G + lambda * sum_psi ||dL_G/dpsi||^2, a flat-minimum (Occam) penalty.

``regularizers.grad_reg_authors: true`` reproduces the construction of the authors' code instead
(docs/methods.md section 3): there the penalty is summed from ``param.grad`` after a first
``backward(retain_graph=True)``, so it carries no graph and is a constant; the caller's second
backward then adds dL_G/dpsi to the ``.grad`` already there. The update therefore sees
2 dL_G/dpsi instead of dL_G/dpsi + lambda d||dL_G/dpsi||^2/dpsi: the same direction as without
the penalty, and under Adam, whose step is invariant to a constant rescaling of the gradient
(up to eps), the same update. The reproduction returns a term whose value is that constant
lambda * ||dL_G/dpsi||^2 and whose gradient is dL_G/dpsi, so the logged loss and the gradient are
the authors'. (With their n_mcd > 1 loop each pass backpropagates once more, so their factor is
n_mcd + 1 instead of 2; still a rescaling.) Kept as a documented switch so that the paper's runs
can be compared with the corrected penalty; tests/test_regularizers.py shows both properties.
"""
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
    #: reproduce the authors' construction: the penalty from .grad without a graph (a constant
    #: that only doubles dL_G/dpsi, so Adam's update is unchanged); off = the differentiable penalty
    grad_reg_authors: bool = False


class GradientNormRegularizer(Regularizer):
    """The gradient is taken with ``create_graph=True`` so the penalty is itself differentiated
    (double backward). The authors' code built it from ``.grad`` without a graph, which makes the
    term a constant; here it changes the update direction (``authors=True`` reproduces theirs).

    A loss computed without a graph (under ``torch.no_grad``, e.g. to log a final loss) has no
    parameter gradient to penalise: the term is then skipped and the plain L_G is returned."""

    penalises_generator = True
    second_order_generator = True

    def __init__(self, weight: float, authors: bool = False):
        self.weight, self.authors = weight, authors

    def generator_penalty(self, loss_g: Tensor, generator: nn.Module) -> Tensor | None:
        params = [p for p in generator.parameters() if p.requires_grad]
        if not loss_g.requires_grad or not params:
            return None
        if self.authors:
            return self._authors_penalty(loss_g, params)
        grads = torch.autograd.grad(loss_g, params, create_graph=True, allow_unused=True)
        # data-parallel: the penalty of the global-batch gradient, averaged inside the graph
        grads = distributed.average_differentiable(grads)
        sq = sum((g.pow(2).sum() for g in grads if g is not None), loss_g.new_zeros(()))
        return self.weight * sq

    def _authors_penalty(self, loss_g: Tensor, params: list[Tensor]) -> Tensor:
        with torch.no_grad():
            grads = torch.autograd.grad(loss_g, params, retain_graph=True, allow_unused=True)
            grads = distributed.average_differentiable(grads)
            constant = sum((g.pow(2).sum() for g in grads if g is not None), loss_g.new_zeros(()))
        # value: the constant penalty; gradient: one more dL_G/dpsi (their second backward)
        return self.weight * constant + (loss_g - loss_g.detach())


REGULARIZERS.add("grad_reg", lambda c: GradientNormRegularizer(c.grad_reg, c.grad_reg_authors) if c.grad_reg > 0
                 else None, params=GradientNormParams)
