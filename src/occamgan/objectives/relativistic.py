"""Relativistic objectives on critic logits d (docs/methods.md section 2): the critic estimates how much
more real a real sample looks than a fake one, not the absolute probability that it is real.

Jolicoeur-Martineau 2019, "The relativistic discriminator: a key element missing from standard
GAN" (arXiv:1807.00734), with d_r = D(x), d_f = D(G(z)) and m_r, m_f their batch means:

- ``rsgan`` (RSGAN, Sec. 4.1, with the non-saturating generator loss the paper trains), i-th real
  with i-th fake:  L_D = E softplus(-(d_r,i - d_f,i)),  L_G = E softplus(-(d_f,i - d_r,i));
- ``rgan`` (RaSGAN, relativistic average, Sec. 4.3; halved as in the Occam paper's code, BCE on logits):
  L_D = 1/2 [E softplus(-(d_r - m_f)) + E softplus(d_f - m_r)],
  L_G = 1/2 [E softplus(-(d_f - m_r)) + E softplus(d_r - m_f)];
- ``ralsgan`` (RaLSGAN, the relativistic average least-squares GAN of the same paper):
  L_D = E (d_r - m_f - 1)^2 + E (d_f - m_r + 1)^2,  L_G = E (d_f - m_r - 1)^2 + E (d_r - m_f + 1)^2;
- ``rahinge`` (RaHingeGAN, likewise):
  L_D = E relu(1 - (d_r - m_f)) + E relu(1 + (d_f - m_r)),
  L_G = E relu(1 - (d_f - m_r)) + E relu(1 + (d_r - m_f)).

RaLSGAN and RaHinge follow the paper's equations (docs/methods.md section 2); the author's code halves
both losses, a constant factor that Adam ignores (it matters only relative to a penalty weight).

- ``rpgan`` (RpGAN of R3GAN: Huang, Gokaslan, Kuleshov & Tompkin 2025, "The GAN is dead; long live
  the GAN! A Modern GAN Baseline", Sec. 2: L = E f(D(G(z)) - D(x)) with f the softplus, paired;
  non-saturating as in their code): the paired loss of RSGAN, L_D = E softplus(d_f,i - d_r,i),
  L_G = E softplus(d_r,i - d_f,i). R3GAN trains it with zero-centred R1 AND R2,
  (gamma/2) E ||grad_x D||^2 at real and at fake points (they prove RpGAN + R1 + R2 locally
  convergent); those are the ``regularizers.r1`` / ``regularizers.r2`` knobs of the
  config (configs/ring8_rpgan.yaml), so ``rpgan`` alone computes the same losses as ``rsgan``.

All of them are relativistic in one function: L_D = loss(d_r, d_f) with ``loss(a, b)`` small when
``a`` looks more real than ``b``, and the generator loss swaps the roles, L_G = loss(d_f, d_r) with
d_r detached (the generator tries to make fake data look more real than real data).
Hence each generator loss reads D(x) (``generator_needs_real``), and none of the games is
zero-sum: grad_G L_G != -grad_G L_D (e.g. RSGAN: L_G pulls d_f with weight sigma(d_r - d_f),
-L_D with sigma(d_f - d_r)), so CGD/ACGD's single value does not describe them.

The mean-relative losses couple a batch (m_r, m_f); within a Game the MC-dropout passes are
evaluated one pass at a time for them, as for every objective. The paired ones need as many real
as fake outputs.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from .base import OBJECTIVES, Objective


def check_paired(d_real: Tensor, d_fake: Tensor) -> None:
    """A paired loss compares real i with fake i: both batches must have the same shape."""
    if d_real.shape != d_fake.shape:
        raise ValueError(f"a paired loss needs as many real as fake outputs, got "
                         f"{tuple(d_real.shape)} and {tuple(d_fake.shape)}")


class Relativistic(Objective):
    """Base of the relativistic objectives: L_D = loss(d_r, d_f), L_G = loss(d_f, d_r.detach())."""

    generator_needs_real = True
    zero_sum = False
    #: whether real i is compared with fake i (else each with the other batch's mean)
    paired: bool = False

    def relativistic_loss(self, favoured: Tensor, other: Tensor) -> Tensor:
        """Small when ``favoured`` looks more real than ``other`` (both critic logits)."""
        raise NotImplementedError

    def discriminator_loss(self, d_real: Tensor, d_fake: Tensor) -> Tensor:
        if self.paired:
            check_paired(d_real, d_fake)
        return self.relativistic_loss(d_real, d_fake)

    def generator_loss(self, d_real: Tensor | None, d_fake: Tensor) -> Tensor:
        if d_real is None:
            raise ValueError(f"the {type(self).__name__} generator loss needs D(x_real)")
        d_real = d_real.detach()
        if self.paired:
            check_paired(d_real, d_fake)
        return self.relativistic_loss(d_fake, d_real)


class RelativisticStandard(Relativistic):
    """RSGAN: loss(a, b) = E softplus(-(a_i - b_i)) (Jolicoeur-Martineau 2019, Sec. 4.1)."""

    paired = True

    def relativistic_loss(self, favoured: Tensor, other: Tensor) -> Tensor:
        return F.softplus(other - favoured).mean()


class RelativisticPairing(RelativisticStandard):
    """RpGAN (R3GAN, Huang et al. 2025, Sec. 2): the RSGAN loss, meant with R1 + R2 (module doc)."""


class RelativisticAverage(Relativistic):
    """RaSGAN as in the Occam paper's code: loss(a, b) = 1/2 [E softplus(-(a - mean b))
    + E softplus(b - mean a)] (Jolicoeur-Martineau 2019, Sec. 4.3, halved)."""

    def relativistic_loss(self, favoured: Tensor, other: Tensor) -> Tensor:
        return 0.5 * (F.softplus(other.mean() - favoured).mean() + F.softplus(other - favoured.mean()).mean())


class RelativisticAverageLeastSquares(Relativistic):
    """RaLSGAN: loss(a, b) = E (a - mean b - 1)^2 + E (b - mean a + 1)^2 (Jolicoeur-Martineau 2019)."""

    def relativistic_loss(self, favoured: Tensor, other: Tensor) -> Tensor:
        return (favoured - other.mean() - 1).pow(2).mean() + (other - favoured.mean() + 1).pow(2).mean()


class RelativisticAverageHinge(Relativistic):
    """RaHinge: loss(a, b) = E relu(1 - (a - mean b)) + E relu(1 + (b - mean a))."""

    def relativistic_loss(self, favoured: Tensor, other: Tensor) -> Tensor:
        return F.relu(1 - (favoured - other.mean())).mean() + F.relu(1 + (other - favoured.mean())).mean()


#: registered name -> class (the generator losses of the same names reuse these objectives)
RELATIVISTIC: dict[str, type[Relativistic]] = {
    "rgan": RelativisticAverage,
    "rsgan": RelativisticStandard,
    "ralsgan": RelativisticAverageLeastSquares,
    "rahinge": RelativisticAverageHinge,
    "rpgan": RelativisticPairing,
}


def _factory(cls: type[Relativistic]):
    def factory(cfg=None) -> Relativistic:  # no options: the config section is ignored
        return cls()

    return factory


for _name, _cls in RELATIVISTIC.items():
    OBJECTIVES.add(_name, _factory(_cls))
