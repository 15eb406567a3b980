"""Weight initialisation of the DCGAN family (Radford, Metz & Chintala 2016, Sec. 4: "All weights
were initialized from a zero-centered Normal distribution with standard deviation 0.02"; the
paper's code, docs/methods.md section 2): convolution weights ~ N(0, 0.02), BatchNorm (and GroupNorm) scales
~ N(1, 0.02), every bias 0.
"""
from __future__ import annotations

import torch
from torch import nn

CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
NORM_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.GroupNorm)


@torch.no_grad()
def dcgan_init_(module: nn.Module, generator: torch.Generator | None = None) -> nn.Module:
    """Initialise every convolution / linear / BatchNorm layer of ``module`` in place (DCGAN
    scheme) and return it. ``generator`` makes the draw reproducible independently of the global
    seed. Call it before adding parametrisations (spectral norm) so the raw weights are drawn."""
    for layer in module.modules():
        if isinstance(layer, CONV_TYPES + (nn.Linear,)):
            layer.weight.normal_(0.0, 0.02, generator=generator)
            if layer.bias is not None:
                layer.bias.zero_()
        elif isinstance(layer, NORM_TYPES) and layer.affine:
            layer.weight.normal_(1.0, 0.02, generator=generator)
            layer.bias.zero_()
    return module
