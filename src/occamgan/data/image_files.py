"""Readers of image file formats into uint8 arrays, and the per-image preparation step.

Every reader returns ``(images, labels)`` with ``images`` a uint8 array of shape (N, H, W, C)
(channels last, as the files store them) and ``labels`` an int64 array or None.

- IDX (LeCun et al., MNIST layout): big-endian header ``0, 0, type, ndim``, then ``ndim`` int32
  sizes, then the values; gzip is detected from the file's magic bytes, not its name.
- CIFAR-10 python batches (Krizhevsky 2009): pickled dicts with ``data`` (N x 3072, planes R, G, B
  of 32 x 32) and ``labels``. Pickle runs code on load: read only files from a trusted source.
- NumPy ``.npz``: see :func:`read_npz` for the accepted keys and layouts.
- Image folders: every PNG/JPEG below a folder, recursively, in sorted path order.
"""
from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ..errors import DataError

IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
#: Pillow filters by config name (data.resize_filter)
FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
}
MODES = {1: "L", 3: "RGB"}


# ---------------------------------------------------------------------------------------- readers
def read_idx(path: Path) -> np.ndarray:
    """Parse one IDX file (gzipped or not) into an array of its declared type and shape."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_TYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    ndim = raw[3]
    shape = tuple(int(s) for s in np.frombuffer(raw, ">i4", count=ndim, offset=4))
    dtype = np.dtype(IDX_TYPES[raw[2]])
    offset = 4 + 4 * ndim
    if len(raw) - offset != dtype.itemsize * int(np.prod(shape)):
        raise DataError(f"{path}: IDX size does not match its header {shape}")
    return np.frombuffer(raw, dtype, offset=offset).reshape(shape).astype(dtype.newbyteorder("="))


def read_idx_pair(images: Path, labels: Path | None) -> tuple[np.ndarray, np.ndarray | None]:
    x = read_idx(images)
    if x.ndim != 3 or x.dtype != np.uint8:
        raise DataError(f"{images}: expected N x H x W uint8 images, got {x.dtype} {x.shape}")
    y = read_idx(labels).astype(np.int64) if labels is not None else None
    if y is not None and y.shape != (x.shape[0],):
        raise DataError(f"{labels}: {y.shape[0]} labels for {x.shape[0]} images")
    return x[..., None], y


def read_cifar_batches(paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for path in paths:
        with open(path, "rb") as fh:
            batch = pickle.load(fh, encoding="bytes")
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        xs.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        ys.append(np.asarray(batch[b"labels"], dtype=np.int64))
    return np.concatenate(xs), np.concatenate(ys)


def read_npz(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Images under key ``images``, ``x`` or ``arr_0`` (or the only array); labels under ``labels``
    or ``y``. Layouts N x H x W (grey), N x H x W x C or N x C x H x W (C in 1, 3, 4, told apart
    by where the small axis is). uint8 arrays are 0..255; float arrays must lie in [0, 1]."""
    with np.load(path) as npz:
        keys = list(npz.keys())
        key = next((k for k in ("images", "x", "arr_0") if k in keys), keys[0] if len(keys) == 1 else None)
        if key is None:
            raise DataError(f"{path}: no array named images, x or arr_0 (found {', '.join(keys)})")
        x = npz[key]
        label_key = next((k for k in ("labels", "y") if k in keys), None)
        y = npz[label_key].astype(np.int64) if label_key else None
    if x.ndim == 3:
        x = x[..., None]
    elif x.ndim == 4 and x.shape[1] in (1, 3, 4) and x.shape[-1] not in (1, 3, 4):
        x = x.transpose(0, 2, 3, 1)
    if x.ndim != 4 or x.shape[-1] not in (1, 3, 4):
        raise DataError(f"{path}: array {key!r} of shape {x.shape} is not N x H x W [x C] images")
    return _as_uint8(x, path), y


def _as_uint8(x: np.ndarray, path: Path) -> np.ndarray:
    if x.dtype == np.uint8:
        return x
    if np.issubdtype(x.dtype, np.floating):
        if x.size and (x.min() < 0 or x.max() > 1):
            raise DataError(f"{path}: float images must lie in [0, 1] (or save uint8 0..255)")
        return np.rint(x * 255).astype(np.uint8)
    raise DataError(f"{path}: images must be uint8 or float, got {x.dtype}")


def list_image_files(folder: Path) -> list[Path]:
    """Every PNG/JPEG file below ``folder`` (recursive, case-insensitive suffix), sorted."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


# ---------------------------------------------------------------------------------------- preparation
def image_channels(mode: str) -> int:
    """Channels an image of Pillow ``mode`` maps to: grey modes -> 1, everything else -> 3."""
    return 1 if mode in ("1", "L", "LA", "I", "I;16", "F") else 3


def prepare_image(img: Image.Image, size: int | None, channels: int, resample: str) -> np.ndarray:
    """Convert to ``channels`` (Pillow ``convert``: grey -> RGB repeats the plane, RGB -> L uses
    ITU-R 601-2 luma, alpha is dropped), then, if ``size`` is set, resize the shorter side to
    ``size`` with the Pillow filter ``resample`` and centre-crop to size x size. Returns H x W x C
    uint8."""
    img = img.convert(MODES[channels])
    if size is not None and img.size != (size, size):
        w, h = img.size
        scale = size / min(w, h)
        new = (max(size, round(w * scale)), max(size, round(h * scale)))
        img = img.resize(new, FILTERS[resample])
        left, top = (new[0] - size) // 2, (new[1] - size) // 2
        img = img.crop((left, top, left + size, top + size))
    arr = np.array(img, dtype=np.uint8)  # a writable copy (torch.from_numpy warns otherwise)
    return arr[..., None] if arr.ndim == 2 else arr


def prepare_array(images: np.ndarray, size: int | None, channels: int, resample: str) -> np.ndarray:
    """:func:`prepare_image` over an N x H x W x C uint8 array (skipped when nothing changes)."""
    n, h, w, c = images.shape
    if c == channels and (size is None or (h, w) == (size, size)):
        return images
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[c]
    planes = images[..., 0] if c == 1 else images
    return np.stack([prepare_image(Image.fromarray(p, mode), size, channels, resample) for p in planes])


def to_model_range(images: np.ndarray) -> Tensor:
    """N x H x W x C uint8 -> N x C x H x W float32 in [-1, 1]: x / 127.5 - 1 (0 -> -1, 255 -> 1)."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    return x.float().div_(127.5).sub_(1.0).contiguous()


class ImageFileDataset(torch.utils.data.Dataset):
    """Map-style data set over image files, decoded on demand (in worker processes when a
    DataLoader has workers). Item ``i`` is ``(i, C x H x W float tensor in [-1, 1])``; the index
    travels with the image so the streaming sampler can check the order it receives."""

    def __init__(self, paths: list[Path], size: int, channels: int, resample: str):
        self.paths, self.size, self.channels, self.resample = paths, size, channels, resample

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, Tensor]:
        with Image.open(self.paths[i]) as img:
            arr = prepare_image(img, self.size, self.channels, self.resample)
        return i, to_model_range(arr[None])[0]
