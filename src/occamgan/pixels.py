"""The one map between the generator's range and 8-bit pixels: u = round(127.5 (x + 1)), clamped
to 0..255 (x = -1 -> 0, x = 0 -> 128 since 127.5 rounds half to even, x = 1 -> 255), and its exact
inverse x = u / 127.5 - 1. Image files are read through the inverse, PNGs written through the
map, and feature networks see generated images through the map too, so real and generated images
reach every metric the same way (the paper's code saved tanh outputs without this rescaling:
docs/methods.md section 4)."""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

PIXEL_SCALE = 127.5


def pixel_values(images: Tensor) -> Tensor:
    """[-1, 1] -> 8-bit pixel values 0..255, as floats on the images' device (same shape)."""
    return ((images.float() + 1.0) * PIXEL_SCALE).round_().clamp_(0.0, 255.0)


def to_uint8(images: Tensor) -> np.ndarray:
    """(N, C, H, W) floats in [-1, 1] -> (N, H, W, C) uint8 (what an image file stores)."""
    if images.ndim != 4:
        raise ValueError(f"expected images of shape (N, C, H, W), got {tuple(images.shape)}")
    u = pixel_values(images.detach().to("cpu", torch.float32)).to(torch.uint8)
    return u.permute(0, 2, 3, 1).numpy()


def to_model_range(images: np.ndarray) -> Tensor:
    """N x H x W x C uint8 -> N x C x H x W float32 in [-1, 1]: x / 127.5 - 1 (0 -> -1, 255 -> 1)."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    return x.float().div_(PIXEL_SCALE).sub_(1.0).contiguous()
