"""Relativistic average GAN (Jolicoeur-Martineau 2019, "The relativistic discriminator", Eq. 6-7),
as in the paper's code (methods.md section 2), with logits and BCE:

  L_D = 1/2 [BCE(d_r - E d_f, 1) + BCE(d_f - E d_r, 0)]
  L_G = 1/2 [BCE(d_f - E d_r, 1) + BCE(d_r - E d_f, 0)],  d_r detached in L_G.

BCE(l, 1) = softplus(-l) and BCE(l, 0) = softplus(l).
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from .base import OBJECTIVES, Objective


class RelativisticAverage(Objective):
    generator_needs_real = True

    def discriminator_loss(self, d_real: Tensor, d_fake: Tensor) -> Tensor:
        return 0.5 * (F.softplus(-(d_real - d_fake.mean())).mean() + F.softplus(d_fake - d_real.mean()).mean())

    def generator_loss(self, d_real: Tensor | None, d_fake: Tensor) -> Tensor:
        assert d_real is not None, "the relativistic generator loss needs D(x_real)"
        d_real = d_real.detach()
        return 0.5 * (F.softplus(-(d_fake - d_real.mean())).mean() + F.softplus(d_real - d_fake.mean()).mean())


OBJECTIVES.add("rgan", lambda cfg=None: RelativisticAverage())
