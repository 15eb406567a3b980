"""Wasserstein objectives: L_D = -E d_r + E d_f, L_G = -E d_f, with a Lipschitz device.

- wgan: weight clipping to [-c, c] after every critic step (Arjovsky et al. 2017, Alg. 1), or
  none with ``clip: null`` (the bare loss, whose Lipschitz control is left to the update rule:
  competitive rules, Schäfer, Zheng & Anandkumar 2020);
- wgan_gp: + lambda E (||grad D(x^)|| - 1)^2 at x^ = a x + (1 - a) x~, a ~ U(0, 1) drawn once per
  sample (Gulrajani et al. 2017, Eq. 3 and Alg. 1; per-pixel or Gaussian a is a known bug);
- wgan_div: + (k/2) E(||grad D(x)||^p + ||grad D(x~)||^p) at the real and the fake points
  (Wu et al. 2018, "Wasserstein Divergence for GANs", Eq. 11/12 as in the paper's code; k=2, p=6).

The penalties are functions of the critic at *detached* sample points (critic_pass.py), so their
gradient w.r.t. the generator is zero and grad_G L_G = -grad_G L_D still holds: with the
objective's own generator loss all three are zero-sum for the competitive rules (CGD, ACGD).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from pydantic import Field

from .. import distributed
from ..params import Params
from .base import OBJECTIVES, Critic, Objective, input_gradient


class ClipParams(Params):
    #: WGAN weight clipping bound c; null: no clipping (the bare WGAN loss, e.g. for ACGD)
    clip: float | None = Field(0.01, gt=0)


class GradientPenaltyParams(Params):
    #: WGAN-GP weight lambda
    gp_weight: float = Field(10.0, ge=0)


class DivergencePenaltyParams(Params):
    #: WGAN-div penalty (k/2) E ||grad D||^p (Wu et al. 2018: k = 2, p = 6)
    div_k: float = Field(2.0, ge=0)
    div_p: float = Field(6.0, gt=0)


class Wasserstein(Objective):
    zero_sum = True

    def discriminator_loss(self, d_real: Tensor, d_fake: Tensor) -> Tensor:
        return d_fake.mean() - d_real.mean()

    def generator_loss(self, d_real: Tensor | None, d_fake: Tensor) -> Tensor:
        return -d_fake.mean()


class WassersteinClip(Wasserstein):
    def __init__(self, clip: float):
        self.clip = clip

    @torch.no_grad()
    def after_discriminator_step(self, discriminator: nn.Module) -> None:
        for p in discriminator.parameters():
            p.clamp_(-self.clip, self.clip)


class WassersteinGP(Wasserstein):
    def __init__(self, weight: float):
        self.weight = weight

    def penalty(self, critic: Critic, real: Tensor, fake: Tensor) -> Tensor:
        shape = (real.shape[0],) + (1,) * (real.dim() - 1)
        # data-parallel: this rank's rows of the weights drawn for the global batch
        a = distributed.rand(shape, device=real.device, dtype=real.dtype)
        mixed = a * real.detach() + (1 - a) * fake.detach()
        _, grad = input_gradient(critic, mixed)
        return self.weight * (torch.linalg.vector_norm(grad, dim=1) - 1).pow(2).mean()


class WassersteinDiv(Wasserstein):
    # the gradients are taken at the loss's own real and fake points: one critic pass serves both
    input_gradient_points = ("real", "fake")

    def __init__(self, k: float, p: float):
        self.k, self.p = k, p

    def penalty(self, critic: Critic, real: Tensor, fake: Tensor) -> Tensor:
        _, g_real = input_gradient(critic, real)
        _, g_fake = input_gradient(critic, fake)
        # ||g||^p = (||g||^2)^(p/2): no square root, so no NaN gradient at g = 0
        power = lambda g: g.pow(2).sum(1).pow(self.p / 2)  # noqa: E731
        return 0.5 * self.k * (power(g_real) + power(g_fake)).mean()


OBJECTIVES.add("wgan", lambda cfg: Wasserstein() if cfg.clip is None else WassersteinClip(cfg.clip), params=ClipParams)
OBJECTIVES.add("wgan_gp", lambda cfg: WassersteinGP(cfg.gp_weight), params=GradientPenaltyParams)
OBJECTIVES.add("wgan_div", lambda cfg: WassersteinDiv(cfg.div_k, cfg.div_p), params=DivergencePenaltyParams)
