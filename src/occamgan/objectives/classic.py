"""Classic GAN objectives on critic logits d (docs/methods.md section 2).

- minimax (Goodfellow et al. 2014, Eq. 1): L_D = E softplus(-d_r) + E softplus(d_f),
  L_G = -E softplus(d_f) (saturating; the game is zero-sum);
- ns, non-saturating (Goodfellow et al. 2014, Sec. 3): same L_D, L_G = E softplus(-d_f);
- lsgan (Mao et al. 2017, Eq. 2 with a=0, b=c=1): L_D = E (d_r - 1)^2 + E d_f^2, L_G = E (d_f - 1)^2;
- hinge (Lim & Ye 2017; Miyato et al. 2018, Eq. 16): L_D = E relu(1 - d_r) + E relu(1 + d_f),
  L_G = -E d_f.
"""
from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor

from .base import OBJECTIVES, Objective


class Minimax(Objective):
    zero_sum = True

    def discriminator_loss(self, d_real: Tensor, d_fake: Tensor) -> Tensor:
        return F.softplus(-d_real).mean() + F.softplus(d_fake).mean()

    def generator_loss(self, d_real: Tensor | None, d_fake: Tensor) -> Tensor:
        return -F.softplus(d_fake).mean()


class NonSaturating(Minimax):
    zero_sum = False

    def generator_loss(self, d_real: Tensor | None, d_fake: Tensor) -> Tensor:
        return F.softplus(-d_fake).mean()


class LeastSquares(Objective):
    def discriminator_loss(self, d_real: Tensor, d_fake: Tensor) -> Tensor:
        return (d_real - 1).pow(2).mean() + d_fake.pow(2).mean()

    def generator_loss(self, d_real: Tensor | None, d_fake: Tensor) -> Tensor:
        return (d_fake - 1).pow(2).mean()


class Hinge(Objective):
    def discriminator_loss(self, d_real: Tensor, d_fake: Tensor) -> Tensor:
        return F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()

    def generator_loss(self, d_real: Tensor | None, d_fake: Tensor) -> Tensor:
        return -d_fake.mean()


def _no_options(cls: type[Objective]):
    def factory(cfg: Any = None) -> Objective:
        return cls()

    return factory


OBJECTIVES.add("minimax", _no_options(Minimax))
OBJECTIVES.add("ns", _no_options(NonSaturating))
OBJECTIVES.add("lsgan", _no_options(LeastSquares))
OBJECTIVES.add("hinge", _no_options(Hinge))
