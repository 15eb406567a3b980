"""Readers of image file formats into uint8 arrays, and the per-image preparation step.

Every reader returns ``(images, labels)`` with ``images`` a uint8 array of shape (N, H, W, C)
(channels last, as the files store them) and ``labels`` an int64 array or None.

- IDX (LeCun et al., MNIST layout): big-endian header ``0, 0, type, ndim``, then ``ndim`` int32
  sizes, then the values; gzip is detected from the file's magic bytes, not its name.
- CIFAR-10 python batches (Krizhevsky 2009): pickled dicts with ``data`` (N x 3072, planes R, G, B
  of 32 x 32) and ``labels``, read by the restricted unpickler of :mod:`.safe_pickle` (plain data
  and numeric NumPy arrays only: a crafted batch cannot run code). The binary version: records of
  one label byte and 3072 pixel bytes (:func:`read_cifar_binary`).
- NumPy ``.npz`` (``allow_pickle=False``): see :func:`read_npz` for the accepted keys and layouts.

A file that cannot be read (corrupt, truncated, wrong format, non-finite values, no samples) is a
one-line :class:`DataError` that names it.
- Image folders: every PNG/JPEG below a folder, recursively, in sorted path order.
"""
from __future__ import annotations

import gzip
import math
import struct
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from ..errors import DataError
from ..pixels import to_model_range  # noqa: F401  (the readers' map, also used by images.py)
from . import safe_pickle

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


# ---------------------------------------------------------------------------------------- checks
def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def read_file(path: Path, what: str) -> bytes:
    """The bytes of ``path``, or a one-line DataError (missing, a directory, unreadable)."""
    try:
        return path.read_bytes()
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, expected {what}") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or _first_line(exc)})") from None


def check_finite(x: np.ndarray, path: Path, what: str = "values") -> None:
    """Refuse NaN and infinite entries of a float array, with their count."""
    if np.issubdtype(x.dtype, np.inexact):
        bad = int(x.size - np.count_nonzero(np.isfinite(x)))
        if bad:
            raise DataError(f"data file {path} holds {bad} non-finite {what} (NaN or infinite) of {x.size}")


def check_not_empty(n: int, path: Path) -> None:
    if n == 0:
        raise DataError(f"data file {path} holds no images (0 samples)")


def as_labels(y: np.ndarray, n: int, path: Path) -> np.ndarray:
    """int64 labels, one per image: integer values (also in a float array), finite, 1-D."""
    if y.dtype == bool or not np.issubdtype(y.dtype, np.number):
        raise DataError(f"data file {path}: labels must be integers, got {y.dtype}")
    check_finite(y, path, "labels")
    if np.issubdtype(y.dtype, np.inexact) and not np.all(y == np.rint(y)):
        raise DataError(f"data file {path}: labels must be whole numbers")
    y = y.reshape(-1) if y.ndim == 2 and 1 in y.shape else y
    if y.shape != (n,):
        raise DataError(f"data file {path}: {y.size} labels of shape {y.shape} for {n} images")
    return y.astype(np.int64)


# ---------------------------------------------------------------------------------------- readers
def gunzip(raw: bytes, path: Path) -> bytes:
    """Decompress gzip bytes of ``path``; a corrupt or truncated file is a one-line DataError."""
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
        raise DataError(f"{path}: corrupt or truncated gzip file ({_first_line(exc)})") from None


def read_idx(path: Path) -> np.ndarray:
    """Parse one IDX file (gzipped or not) into an array of its declared type and shape."""
    raw = read_file(path, "an IDX file")
    if raw[:2] == b"\x1f\x8b":
        raw = gunzip(raw, path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_TYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    ndim = raw[3]
    offset = 4 + 4 * ndim
    if ndim == 0 or len(raw) < offset:
        raise DataError(f"{path}: IDX header declares {ndim} dimensions but the file has {len(raw)} bytes")
    shape = tuple(int(s) for s in np.frombuffer(raw, ">i4", count=ndim, offset=4))
    if any(s < 0 for s in shape):
        raise DataError(f"{path}: IDX header has a negative size {shape}")
    dtype = np.dtype(IDX_TYPES[raw[2]])
    if len(raw) - offset != dtype.itemsize * math.prod(shape):
        raise DataError(f"{path}: IDX size does not match its header {shape} "
                        f"({len(raw) - offset} bytes of data for {math.prod(shape)} values)")
    return np.frombuffer(raw, dtype, offset=offset).reshape(shape).astype(dtype.newbyteorder("="))


def read_idx_pair(images: Path, labels: Path | None) -> tuple[np.ndarray, np.ndarray | None]:
    x = read_idx(images)
    if x.ndim != 3 or x.dtype != np.uint8:
        raise DataError(f"{images}: expected N x H x W uint8 images, got {x.dtype} {x.shape}")
    check_not_empty(x.shape[0], images)
    if 0 in x.shape[1:]:
        raise DataError(f"{images}: images of size {x.shape[1]} x {x.shape[2]}")
    y = as_labels(read_idx(labels), x.shape[0], labels) if labels is not None else None
    return x[..., None], y


def _batch_entry(batch: dict, key: str, path: Path):
    for k in (key.encode(), key):  # bytes keys: Python-3 pickles or encoding="bytes"; str: Python 2 + latin1
        if k in batch:
            return batch[k]
    raise DataError(f"{path}: CIFAR-10 batch has no {key!r} entry")


def read_cifar_batches(paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 python batches, through the restricted unpickler (:mod:`.safe_pickle`): a pickle
    that names anything but plain data and NumPy arrays is refused before any of it runs."""
    xs, ys = [], []
    for path in paths:
        batch = safe_pickle.load(path)
        if not isinstance(batch, dict):
            raise DataError(f"{path}: not a CIFAR-10 batch (a {type(batch).__name__}, expected a dict)")
        try:
            data = np.asarray(_batch_entry(batch, "data", path))
            labels = np.asarray(_batch_entry(batch, "labels", path))
        except (ValueError, TypeError) as exc:  # ragged lists and the like
            raise DataError(f"{path}: CIFAR-10 batch entries are not arrays ({_first_line(exc)})") from None
        if data.ndim != 2 or data.shape[1] != 3072 or not np.issubdtype(data.dtype, np.integer):
            raise DataError(f"{path}: CIFAR-10 'data' must be N x 3072 integers, got {data.dtype} {data.shape}")
        if data.size and (data.min() < 0 or data.max() > 255):
            raise DataError(f"{path}: CIFAR-10 'data' values outside 0..255")
        xs.append(data.astype(np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        ys.append(as_labels(labels, data.shape[0], path))
    x = np.concatenate(xs)
    check_not_empty(len(x), paths[0] if len(paths) == 1 else paths[0].parent)
    return x, np.concatenate(ys)


#: the binary version: records of 1 label byte + 3 x 32 x 32 pixel bytes (planes R, G, B)
CIFAR_RECORD = 1 + 3 * 32 * 32


def read_cifar_binary(paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 binary batches (``cifar-10-batches-bin/*.bin``): no pickle involved."""
    xs, ys = [], []
    for path in paths:
        raw = read_file(path, "a CIFAR-10 binary batch")
        if not raw or len(raw) % CIFAR_RECORD:
            raise DataError(f"{path}: {len(raw)} bytes is not a whole number of {CIFAR_RECORD}-byte "
                            f"CIFAR-10 records (truncated or not a CIFAR-10 binary batch)")
        records = np.frombuffer(raw, np.uint8).reshape(-1, CIFAR_RECORD)
        labels = records[:, 0].astype(np.int64)
        if labels.max() > 9:
            raise DataError(f"{path}: CIFAR-10 label {int(labels.max())} outside 0..9 (not a CIFAR-10 binary batch)")
        xs.append(records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        ys.append(labels)
    return np.concatenate(xs), np.concatenate(ys)


#: what np.load raises on a file that is not a (readable) .npz
NPZ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, KeyError, struct.error, UnicodeError)


def _npz_reason(exc: BaseException) -> str:
    text = str(exc)
    if "Object arrays cannot be loaded" in text:
        return "holds an object array (pickled Python objects are never loaded; save numeric arrays)"
    if "pickled" in text:  # neither a zip nor a .npy: np.load would have to unpickle it
        return "is not an .npz (zip) or .npy file"
    return f"is corrupt or truncated ({_first_line(exc)})"


def read_npz(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Images under key ``images``, ``x`` or ``arr_0`` (or the only array); labels under ``labels``
    or ``y``. Layouts N x H x W (grey), N x H x W x C or N x C x H x W (C in 1, 3, 4, told apart
    by where the small axis is). uint8 arrays are 0..255, other integer arrays must lie in 0..255,
    float arrays in [0, 1] and be finite. A single ``.npy`` array is read as the images.

    Loaded with ``allow_pickle=False``: an object array is refused, never unpickled."""
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected an .npz file (set data.root to the file)")
    key = "images"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. numpy's VisibleDeprecationWarning on odd headers
            loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            x, y = loaded, None
        else:
            with loaded as npz:
                keys = list(npz.keys())
                key = next((k for k in ("images", "x", "arr_0") if k in keys), keys[0] if len(keys) == 1 else None)
                if key is None:
                    raise DataError(f"{path}: no array named images, x or arr_0 (found {', '.join(keys) or 'none'})")
                x = npz[key]
                label_key = next((k for k in ("labels", "y") if k in keys), None)
                y = npz[label_key] if label_key else None
    except NPZ_ERRORS as exc:
        raise DataError(f"{path}: {_npz_reason(exc)}") from None
    if x.ndim == 3:
        x = x[..., None]
    elif x.ndim == 4 and x.shape[1] in (1, 3, 4) and x.shape[-1] not in (1, 3, 4):
        x = x.transpose(0, 2, 3, 1)
    if x.ndim != 4 or x.shape[-1] not in (1, 3, 4):
        raise DataError(f"{path}: array {key!r} of shape {x.shape} is not N x H x W [x C] images")
    check_not_empty(x.shape[0], path)
    if 0 in x.shape[1:3]:
        raise DataError(f"{path}: images of size {x.shape[1]} x {x.shape[2]}")
    x = _as_uint8(x, path)
    return x, (as_labels(y, x.shape[0], path) if y is not None else None)


def _as_uint8(x: np.ndarray, path: Path) -> np.ndarray:
    if x.dtype == np.uint8:
        return x
    if np.issubdtype(x.dtype, np.floating):
        check_finite(x, path)
        if x.size and (x.min() < 0 or x.max() > 1):
            raise DataError(f"{path}: float images must lie in [0, 1] (or save uint8 0..255)")
        return np.rint(x * 255).astype(np.uint8)
    if np.issubdtype(x.dtype, np.integer) and x.dtype != bool:
        if x.size and (x.min() < 0 or x.max() > 255):
            raise DataError(f"{path}: integer images must lie in 0..255")
        return x.astype(np.uint8)
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


# ---------------------------------------------------------------------------------------- image files
#: what Pillow raises on a file that is not a readable image (UnidentifiedImageError is an OSError;
#: SyntaxError: "broken PNG file"; DecompressionBombError: absurd declared sizes)
IMAGE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error, MemoryError,
                Image.DecompressionBombError)


class BadImageFile(DataError):
    """An image file that Pillow cannot read. Raised in a DataLoader worker, it reaches the main
    process rebuilt by torch from a multi-line "Caught ... Original Traceback ..." text; the
    constructor takes back the original one-line message from that text's last line."""

    def __init__(self, message: str):
        if "Original Traceback" in message:
            last = message.rstrip().splitlines()[-1]
            message = last.partition(": ")[2] or last
        super().__init__(message)


def image_error(path: Path, exc: BaseException) -> str:
    """One line: the file and why Pillow could not read it."""
    if isinstance(exc, UnidentifiedImageError):
        return f"{path}: not an image Pillow can identify (corrupt, truncated or another format)"
    return f"{path}: unreadable image, corrupt or truncated ({_first_line(exc)})"


def open_image(path: Path) -> Image.Image:
    """``Image.open`` (header only) with a one-line :class:`BadImageFile` on failure."""
    try:
        return Image.open(path)
    except IMAGE_ERRORS as exc:
        raise BadImageFile(image_error(path, exc)) from None


def decode_image(path: Path, size: int | None, channels: int, resample: str) -> np.ndarray:
    """:func:`prepare_image` of the file ``path``; an unreadable file is a :class:`BadImageFile`."""
    try:
        with Image.open(path) as img:
            return prepare_image(img, size, channels, resample)
    except IMAGE_ERRORS as exc:
        raise BadImageFile(image_error(path, exc)) from None


def probe_image(path: Path) -> str:
    """'' if ``path`` decodes completely, else the one-line reason. JPEGs are decoded at 1/8
    scale (Pillow's draft mode: every byte of the file is still read, a fraction of the work)."""
    try:
        with Image.open(path) as img:
            if img.format == "JPEG":
                img.draft(img.mode, (1, 1))
            img.load()
        return ""
    except IMAGE_ERRORS as exc:
        return image_error(path, exc)


class ImageFileDataset(torch.utils.data.Dataset):
    """Map-style data set over image files, decoded on demand (in worker processes when a
    DataLoader has workers). Item ``i`` is ``(i, C x H x W float tensor in [-1, 1])``; the index
    travels with the image so the streaming sampler can check the order it receives. A file that
    cannot be decoded raises :class:`BadImageFile` naming it."""

    def __init__(self, paths: list[Path], size: int, channels: int, resample: str):
        self.paths, self.size, self.channels, self.resample = paths, size, channels, resample

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, Tensor]:
        arr = decode_image(self.paths[i], self.size, self.channels, self.resample)
        return i, to_model_range(arr[None])[0]


class TolerantImages(torch.utils.data.Dataset):
    """:class:`ImageFileDataset` whose item ``i`` is ``(i, image, reason)``: an unreadable file
    gives a zero image and its one-line reason instead of an error, so one pass over a folder
    (in worker processes too) finds every bad file."""

    def __init__(self, files: ImageFileDataset):
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[int, Tensor, str]:
        try:
            return (*self.files[i], "")
        except BadImageFile as exc:
            f = self.files
            return i, torch.zeros(f.channels, f.size, f.size), str(exc)


class ProbeImages(torch.utils.data.Dataset):
    """Item ``i``: ``(i, reason)`` of :func:`probe_image` ('' when the file is readable)."""

    def __init__(self, paths: list[Path]):
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, str]:
        return i, probe_image(self.paths[i])
