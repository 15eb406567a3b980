"""The sample-gradient regulariser of the authors' MMD-GAN code (Filippone & Linhard 2025, code
``objective_mmd_gan.py``; docs/methods.md section 3): L_G + lambda * mean_i ||dL_G/dx~_i||_2, the
Euclidean norm (not squared, whatever the code's variable name says) of the gradient of the
generator loss w.r.t. each generated sample x~_i, averaged over the batch. It is the gradient
regularisation of their MMD objective, which has no critic; here it applies to any objective.

Unlike their parameter-gradient penalty (regularizers/gradient_norm.py, ``grad_reg_authors``) it
is built with ``create_graph=True`` in their code too, so it is differentiated and changes the
update; this implementation is the same. With likelihood relaxation the gradient is taken at the
noised samples G(z) + sigma eps, as theirs is (the same values: the noise is additive).

How it sees the samples: the Game's generator-penalty hook receives the loss and the generator
only, so this regulariser keeps a reference to the fakes that pass through its
``transform_fake`` hook (every fake of a loss goes through it, regularizers/base.py) and takes
the gradient w.r.t. the last ones, which are those of the generator loss being penalised; fakes
without a graph (a critic step's) are never penalised. With ``train.n_mcd > 1`` the fakes of the
passes are stacked and the loss is their mean, so each sample's gradient is 1/n_mcd of its
pass's own (the authors average per-pass penalties instead).
"""
from __future__ import annotations

import torch
from pydantic import Field
from torch import Tensor, nn

from ..params import Params
from .base import REGULARIZERS, Regularizer


class SampleGradientParams(Params):
    #: the authors' MMD variant of gradient regularisation: lambda * mean_i ||dL_G / dx~_i||_2,
    #: w.r.t. the generated samples (double backward; 0 = off)
    grad_reg_samples: float = Field(0.0, ge=0)


class SampleGradientPenalty(Regularizer):
    penalises_generator = True
    second_order_generator = True

    def __init__(self, weight: float):
        self.weight = weight
        self._fake: Tensor | None = None

    def transform_fake(self, fake: Tensor) -> Tensor:
        self._fake = fake if fake.requires_grad else None
        return fake

    def generator_penalty(self, loss_g: Tensor, generator: nn.Module) -> Tensor | None:
        fake, self._fake = self._fake, None  # never keep a graph alive past its loss
        if fake is None or not loss_g.requires_grad:
            return None
        (grad,) = torch.autograd.grad(loss_g, [fake], create_graph=True, allow_unused=True)
        if grad is None:  # the kept fakes are not those of this loss
            return None
        return self.weight * grad.flatten(1).norm(dim=1).mean()


REGULARIZERS.add("grad_reg_samples",
                 lambda c: SampleGradientPenalty(c.grad_reg_samples) if c.grad_reg_samples > 0 else None,
                 params=SampleGradientParams)
