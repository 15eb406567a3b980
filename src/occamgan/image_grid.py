"""PNG export of generated images, rescaled correctly from the generator's [-1, 1] range.

The pixel map is u = round(255 (x + 1) / 2), clamped to 0..255: x = -1 -> 0, x = 0 -> 128
(127.5 rounded half to even gives 128), x = 1 -> 255. It is the exact inverse of the data scaling
x = u / 127.5 - 1 (:func:`occamgan.data.image_files.to_model_range`), so a real image written
here comes back byte for byte. The paper's code saved tanh outputs without this rescaling, so
every negative pixel was clipped to black (docs/methods.md section 4); generated and reference images
must go through the same map before any metric that reads PNGs.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .pixels import to_uint8  # noqa: F401  (re-exported: the PNG writers' map)


def grid_array(images: Tensor, nrow: int | None = None, padding: int = 2, pad_value: int = 0) -> np.ndarray:
    """Tile (N, C, H, W) images in [-1, 1] into one uint8 array, ``nrow`` images per row
    (default: a near-square grid), ``padding`` pixels of ``pad_value`` around every tile."""
    tiles = to_uint8(images)
    n, h, w, c = tiles.shape
    ncol = nrow or max(1, math.ceil(math.sqrt(n)))
    nrows = max(1, math.ceil(n / ncol))
    grid = np.full((padding + nrows * (h + padding), padding + ncol * (w + padding), c), pad_value, np.uint8)
    for i in range(n):
        r, col = divmod(i, ncol)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        grid[top : top + h, left : left + w] = tiles[i]
    return grid


def _pil(array: np.ndarray) -> Image.Image:
    return Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)


def save_image_grid(images: Tensor, path: str | Path, nrow: int | None = None, padding: int = 2) -> Path:
    """Write (N, C, H, W) images in [-1, 1] as one PNG grid at ``path`` (parent folders created);
    grey images (C = 1) give a greyscale PNG, C = 3 an RGB one. Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _pil(grid_array(images, nrow, padding)).save(path, format="PNG")
    return path


def save_images(images: Tensor, folder: str | Path, start: int = 0) -> list[Path]:
    """Write each image as its own PNG ``folder/{start + i:06d}.png`` (for PNG-based metric tools)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, tile in enumerate(to_uint8(images)):
        path = folder / f"{start + i:06d}.png"
        _pil(tile).save(path, format="PNG")
        paths.append(path)
    return paths
