"""DCGAN generator and critic at 2^k pixels (32, 64, 128, ...), as in the paper's code.

Radford, Metz & Chintala 2016 ("Unsupervised representation learning with deep convolutional
GANs"), in the form used by Filippone & Linhard's code (docs/methods.md section 2). With
L = log2(size) - 2 hidden blocks:

- generator: z (latent_dim) -> ConvT(4, 1, 0) to (ngf 2^(L-1)) x 4 x 4, then L - 1 blocks
  ConvT(4, 2, 1) halving the channels and doubling the size, each ConvT -> BatchNorm -> ReLU;
  a last ConvT(4, 2, 1) to ``channels`` and tanh. DCGAN-64: 100 -> 512x4x4 -> 256x8x8 ->
  128x16x16 -> 64x32x32 -> nc x 64 x 64 (ngf = 64); DCGAN-128 adds a 1024-channel stage.
- critic: the mirror image, Conv(4, 2, 1) -> [BatchNorm from the second block] -> LeakyReLU(0.2),
  then a 4 x 4 Conv(4, 1, 0) to one logit per image.

No layer has a bias (BatchNorm's shift plays that role; the paper's code sets bias=False).
Dropout2d slots (rate ``model.dropout``, for MC dropout) follow hidden blocks 2 .. L-1 of both
networks: after the 2nd and 3rd blocks at 64 px, the 2nd to 4th at 128 px (the paper's three
layers), and, our choice for sizes the paper did not use, after the 2nd and 3rd at 32 px and the
2nd at 16 px. A slot is an ``nn.Identity`` when the rate is 0, so parameter names do not depend on
the rate. Weights are initialised as in :mod:`occamgan.models.init`. ``model.spectral_norm`` adds
spectral normalisation (Miyato et al. 2018) to every critic convolution.

``model.d_norm`` picks the critic's normalisation: "batch" (the paper's), "layer" (GroupNorm with
one group, statistics per sample over C x H x W, as Gulrajani et al. 2017, section 4, use for
WGAN-GP critics) or "none". Either normalisation makes the critic contrast-invariant, D(c x) = D(x)
for c > 0, so ||grad_x D(c x)|| = ||grad_x D(x)|| / c: steep at low-contrast inputs such as a
young generator's near-grey fakes, where WGAN-div's ||grad D||^p penalty (p = 6) then flattens the
critic before the generator learns (docs/experiments/mnist.md). Without normalisation the
bias-free critic is positively homogeneous, D(c x) = c D(x), and its gradient does not depend on
contrast.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any, Literal

from pydantic import Field
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from ..errors import ConfigError
from ..params import Params
from .base import MODELS, ModelPair
from .init import dcgan_init_


def hidden_blocks(size: int) -> int:
    """L = log2(size) - 2 for a square image of ``size`` = 2^k >= 16 pixels."""
    if size < 16 or size & (size - 1):
        raise ConfigError(
            f"model dcgan needs square images of 2^k >= 16 pixels (got {size}); "
            "set data.image_size, e.g. 32 or 64"
        )
    return int(math.log2(size)) - 2


def dropout_slots(n_blocks: int) -> range:
    """Hidden blocks (1-based) followed by a Dropout2d slot: 2 .. max(L - 1, min(L, 3))."""
    return range(2, max(n_blocks - 1, min(n_blocks, 3)) + 1)


def critic_norm(kind: str, width: int) -> nn.Module:
    """The critic's normalisation layer for ``width`` channels (see ``model.d_norm``)."""
    if kind == "batch":
        return nn.BatchNorm2d(width)
    if kind == "layer":
        return nn.GroupNorm(1, width)
    return nn.Identity()


def _slot(rate: float) -> nn.Module:
    return nn.Dropout2d(rate) if rate > 0 else nn.Identity()


class DCGANGenerator(nn.Module):
    def __init__(self, latent_dim: int, channels: int, size: int, ngf: int, dropout: float = 0.0):
        super().__init__()
        self.latent_dim = latent_dim
        n = hidden_blocks(size)
        widths = [ngf * 2 ** (n - 1 - i) for i in range(n)]
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        for i, width in enumerate(widths, start=1):
            conv = (nn.ConvTranspose2d(latent_dim, width, 4, 1, 0, bias=False) if i == 1
                    else nn.ConvTranspose2d(widths[i - 2], width, 4, 2, 1, bias=False))
            layers[f"block{i}"] = nn.Sequential(conv, nn.BatchNorm2d(width), nn.ReLU())
            if i in dropout_slots(n):
                layers[f"dropout{i}"] = _slot(dropout)
        layers["out"] = nn.Sequential(nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1, bias=False), nn.Tanh())
        self.net = nn.Sequential(layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z.view(z.shape[0], self.latent_dim, 1, 1))


class DCGANCritic(nn.Module):
    def __init__(self, channels: int, size: int, ndf: int, dropout: float = 0.0, norm: str = "batch"):
        super().__init__()
        n = hidden_blocks(size)
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        width_in = channels
        for i in range(1, n + 1):
            width = ndf * 2 ** (i - 1)
            norm_layer = critic_norm(norm, width) if i > 1 else nn.Identity()
            layers[f"block{i}"] = nn.Sequential(
                nn.Conv2d(width_in, width, 4, 2, 1, bias=False), norm_layer, nn.LeakyReLU(0.2)
            )
            if i in dropout_slots(n):
                layers[f"dropout{i}"] = _slot(dropout)
            width_in = width
        layers["out"] = nn.Conv2d(width_in, 1, 4, 1, 0, bias=False)
        self.net = nn.Sequential(layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).reshape(-1)


def add_spectral_norm(module: nn.Module) -> nn.Module:
    for layer in list(module.modules()):
        if isinstance(layer, nn.Conv2d):
            spectral_norm(layer)
    return module


class DCGANParams(Params):
    #: generator and critic widths (channels of the widest block / 8, as in Radford et al. 2016)
    ngf: int = Field(64, ge=1)
    ndf: int = Field(64, ge=1)
    spectral_norm: bool = False
    #: normalisation in the critic's hidden blocks 2..L: "batch" (the paper's code), "layer"
    #: (GroupNorm with one group: per-sample statistics over C x H x W) or "none" (the choice for
    #: WGAN-div: a normalised critic is steep at low-contrast fakes; see critic_norm)
    d_norm: Literal["batch", "layer", "none"] = "batch"


@MODELS.register("dcgan", params=DCGANParams)
def build_dcgan(cfg: Any, sample_shape: tuple[int, ...], with_discriminator: bool) -> ModelPair:
    """DCGAN pair for images of ``sample_shape`` = (channels, size, size)."""
    if len(sample_shape) != 3 or sample_shape[1] != sample_shape[2]:
        raise ConfigError(f"model dcgan needs square images (C, H, W); the data have shape {sample_shape}")
    channels, size = sample_shape[0], sample_shape[1]
    g = dcgan_init_(DCGANGenerator(cfg.latent_dim, channels, size, cfg.ngf, cfg.dropout))
    d = None
    if with_discriminator:
        d = dcgan_init_(DCGANCritic(channels, size, cfg.ndf, cfg.dropout, cfg.d_norm))
        if cfg.spectral_norm:
            add_spectral_norm(d)
    return ModelPair(g, d)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


__all__ = ["DCGANGenerator", "DCGANCritic", "build_dcgan", "hidden_blocks", "dropout_slots", "count_parameters"]
