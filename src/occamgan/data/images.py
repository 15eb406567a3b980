"""Image data sets: MNIST, Fashion-MNIST, CIFAR-10 (python or binary batches), image folders,
.npz arrays, sklearn digits.

Every set is returned as a :class:`DataSource` of kind "image" holding float32 images of shape
(N, C, H, W) scaled to [-1, 1] (x / 127.5 - 1, matching the generator's tanh output), with class
labels when the set has them. Preparation, in this order (see
:func:`occamgan.data.image_files.prepare_image`):

1. channels: ``data.channels`` (1 or 3; default: the set's own) via Pillow ``convert``
   (grey -> RGB repeats the plane, RGB -> grey is ITU-R 601-2 luma, alpha is dropped);
2. size: ``data.image_size`` (default: the set's own) by resizing the shorter side with the
   Pillow filter ``data.resize_filter`` (default bilinear, torchvision's ``Resize`` default, the
   paper's code resized 28 -> 64 this way) and centre-cropping to a square;
3. scaling from uint8 0..255 to [-1, 1].

Files are found under ``data.root`` / ``$OCCAMGAN_DATA`` / the cache directory
(:mod:`occamgan.data.download`); missing files of the public sets are downloaded with a checksum
when ``data.download`` is on and the network allows, otherwise a one-line :class:`DataError` says
which files to put where. Image folders bigger than ``data.max_memory_mb`` are not loaded but
streamed through ``data.num_workers`` worker processes.

No file is read in a way that can run code (CIFAR-10 pickles go through
:mod:`occamgan.data.safe_pickle`, ``.npz`` files are loaded with ``allow_pickle=False``), and a
file that cannot be read - corrupt, truncated, wrong format, non-finite values, no samples - is a
one-line :class:`DataError` naming it. Unreadable files in an image folder can instead be skipped
with ``data.skip_bad_files`` (one warning line counts them).
"""
from __future__ import annotations

import logging
import os
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..errors import DataError
from .base import DATASETS, DataSource
from .download import RemoteFile, candidate_dirs, data_root, fetch_missing
from .image_files import (
    BadImageFile,
    ImageFileDataset,
    ProbeImages,
    TolerantImages,
    image_channels,
    list_image_files,
    open_image,
    probe_image,
    prepare_array,
    read_cifar_batches,
    read_cifar_binary,
    read_idx_pair,
    read_npz,
    to_model_range,
)

log = logging.getLogger(__name__)

MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist"
FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com"
#: md5 sums as published with the files (also those checked by torchvision)
IDX_SETS = {
    "mnist": (MNIST_URL, {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    }),
    "fashion_mnist": (FASHION_URL, {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    }),
}
CIFAR10 = RemoteFile("cifar-10-python.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                     md5="c58f30108f718f92721af3b95e74349a")
CIFAR10_BINARY = RemoteFile("cifar-10-binary.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
                            md5="c32a1d4ab5d03f1284b67883e8d87530")
CIFAR10_ARCHIVES = (CIFAR10, CIFAR10_BINARY)
CIFAR10_DIR = "cifar-10-batches-py"
CIFAR10_DIRS = (CIFAR10_DIR, "cifar-10-batches-bin")
#: scikit-learn's digits have no official split: the last DIGITS_TEST images are the test split
DIGITS_TEST = 297


def image_source(name: str, images: np.ndarray, labels: np.ndarray | None, cfg: Any, **info: Any) -> DataSource:
    """Prepare N x H x W x C uint8 ``images`` (channels, size) and wrap them, scaled to [-1, 1]."""
    if len(images) == 0:
        raise DataError(f"{name}: data file {info.get('files', name)} holds no images (0 samples)")
    channels = cfg.channels or (1 if images.shape[-1] == 1 else 3)
    _check_channels(channels)
    images = prepare_array(images, cfg.image_size, channels, cfg.resize_filter)
    data = to_model_range(images)
    info.update(split=cfg.split, resize_filter=cfg.resize_filter)
    y = torch.from_numpy(labels) if labels is not None else None
    return DataSource(name, data, kind="image", labels=y, info=info)


def _check_channels(channels: int) -> None:
    if channels not in (1, 3):
        raise DataError(f"data.channels must be 1 or 3 for images (got {channels})")


# ------------------------------------------------------------------------------ IDX: (Fashion-)MNIST
def _idx_files(split: str) -> tuple[str, str]:
    prefix = "train" if split == "train" else "t10k"
    return f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"


def _find(dirs: list[Path], stem: str) -> Path | None:
    """``stem`` or ``stem.gz`` in the first directory that has either."""
    for d in dirs:
        for name in (stem, stem + ".gz"):
            if (d / name).is_file():
                return d / name
    return None


def load_idx_set(name: str, cfg: Any) -> DataSource:
    """MNIST-layout IDX files ``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]``."""
    dirs = candidate_dirs(cfg.root, name)
    image_stem, label_stem = _idx_files(cfg.split)
    images = _find(dirs, image_stem)
    if images is None:
        url, sums = IDX_SETS[name]
        wanted = [f"{image_stem}.gz", f"{label_stem}.gz"]
        remotes = [RemoteFile(f, f"{url}/{f}", md5=sums[f]) for f in wanted]
        dirs = [fetch_missing(name, remotes, cfg.root, cfg.download)]
        images = _find(dirs, image_stem)
    labels = _find([images.parent], label_stem)
    x, y = read_idx_pair(images, labels)
    return image_source(name, x, y, cfg, files=str(images))


@DATASETS.register("mnist")
def mnist(cfg: Any) -> DataSource:
    """MNIST (LeCun, Cortes & Burges): 60,000 train / 10,000 test grey 28 x 28 digits."""
    return load_idx_set("mnist", cfg)


@DATASETS.register("fashion_mnist")
def fashion_mnist(cfg: Any) -> DataSource:
    """Fashion-MNIST (Xiao, Rasul & Vollgraf 2017): MNIST's layout, 10 clothing classes."""
    return load_idx_set("fashion_mnist", cfg)


# ------------------------------------------------------------------------------ CIFAR-10
def _cifar_layout(folder: Path) -> str | None:
    """"python" / "binary" when ``folder`` holds CIFAR-10 batches of that version, else None."""
    for layout, suffix in (("python", ""), ("binary", ".bin")):
        if any((folder / f"{stem}{suffix}").is_file() for stem in ("test_batch", "data_batch_1")):
            return layout
    return None


def _extract_cifar(archive: Path) -> Path:
    """Unpack ``archive`` next to itself and return the batch folder it holds.

    The archive is unpacked into a temporary folder first, so a corrupt or truncated archive
    leaves nothing that looks like a data set; files already in the target folder are kept
    (only missing ones are added)."""
    parent = archive.parent
    tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f".{archive.name}.", suffix=".extract"))
    try:
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(tmp, filter="data")
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DataError(f"{archive}: corrupt or truncated archive ({text})") from None
        found = next((tmp / d for d in CIFAR10_DIRS if _cifar_layout(tmp / d)), None)
        if found is None:
            raise DataError(f"{archive}: holds no {' or '.join(CIFAR10_DIRS)} folder of CIFAR-10 batches")
        target = parent / found.name
        target.mkdir(exist_ok=True)
        for item in found.iterdir():
            if not (target / item.name).exists():
                os.replace(item, target / item.name)
        return target
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _cifar_dir(cfg: Any) -> Path:
    dirs = candidate_dirs(cfg.root, "cifar10")
    for d in dirs:
        for folder in (*(d / name for name in CIFAR10_DIRS), d):
            if _cifar_layout(folder):
                return folder
    archive = next((d / a.name for d in dirs for a in CIFAR10_ARCHIVES if (d / a.name).is_file()), None)
    if archive is None:
        archive = fetch_missing("cifar10", [CIFAR10], cfg.root, cfg.download) / CIFAR10.name
    return _extract_cifar(archive)


@DATASETS.register("cifar10")
def cifar10(cfg: Any) -> DataSource:
    """CIFAR-10 (Krizhevsky 2009): 50,000 train / 10,000 test RGB 32 x 32, from the python
    batches (``cifar-10-batches-py``, read without running pickled code) or the binary ones
    (``cifar-10-batches-bin``, ``*.bin``), or from either archive; downloads fetch the python one."""
    folder = _cifar_dir(cfg)
    layout = _cifar_layout(folder)
    suffix = ".bin" if layout == "binary" else ""
    stems = [f"data_batch_{i}" for i in range(1, 6)] if cfg.split == "train" else ["test_batch"]
    names = [stem + suffix for stem in stems]
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise DataError(f"cifar10: missing {', '.join(missing)} in {folder}")
    read = read_cifar_binary if layout == "binary" else read_cifar_batches
    x, y = read([folder / n for n in names])
    return image_source("cifar10", x, y, cfg, files=str(folder))


# ------------------------------------------------------------------------------ npz, digits
def _required_root(name: str, cfg: Any, what: str) -> Path:
    if not cfg.root:
        raise DataError(f"{name}: set data.root to the {what}")
    path = data_root(cfg.root)
    if not path.exists():
        raise DataError(f"{name}: data.root {str(path)!r} does not exist (expected the {what})")
    return path


@DATASETS.register("npz")
def npz(cfg: Any) -> DataSource:
    """Images from a NumPy ``.npz`` file at ``data.root`` (layouts: :func:`read_npz`); one file,
    so ``data.split`` does not apply."""
    path = _required_root("npz", cfg, ".npz file")
    x, y = read_npz(path)
    return image_source("npz", x, y, cfg, files=str(path))


@DATASETS.register("digits")
def digits(cfg: Any) -> DataSource:
    """scikit-learn's 8 x 8 digits (1,797 images, 17 grey levels 0..16, rescaled to 0..255);
    the last 297 images are the test split. Small enough for tests; upsample with image_size."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    y = bunch.target.astype(np.int64)
    cut = len(x) - DIGITS_TEST
    x, y = (x[:cut], y[:cut]) if cfg.split == "train" else (x[cut:], y[cut:])
    return image_source("digits", x, y, cfg)


# ------------------------------------------------------------------------------ image folders
def _folder_geometry(paths: list[Path], cfg: Any, folder: Path) -> tuple[int, int]:
    """(size, channels): from the config, else from the first image that opens (which must be
    square). Unreadable files are passed over here: the decoding pass names them."""
    for path in paths:
        try:
            first = open_image(path)
        except BadImageFile:
            continue
        with first:
            channels = cfg.channels or image_channels(first.mode)
            size = cfg.image_size
            if size is None:
                if first.size[0] != first.size[1]:
                    raise DataError(f"image_folder: {path} is not square; set data.image_size")
                size = first.size[0]
        _check_channels(channels)
        return size, channels
    raise DataError(f"image_folder: none of the {len(paths)} image files below {folder} is readable; "
                    f"first: {probe_image(paths[0])}")


def _skip_bad(cfg: Any) -> bool:
    # data.skip_bad_files is new in the schema; getattr keeps this working with configs without it
    return bool(getattr(cfg, "skip_bad_files", False))


def _refuse_bad(paths: list[Path], bad: dict[int, str], folder: Path, total: int) -> None:
    """The one-line error for unreadable files: the first one, why, and how many there are."""
    first = bad[min(bad)]
    if len(bad) == total:
        raise DataError(f"image_folder: none of the {total} image files below {folder} is readable; first: {first}")
    more = f"; {len(bad) - 1} more unreadable image files below {folder}" if len(bad) > 1 else ""
    raise DataError(f"{first}{more} (set data.skip_bad_files=true to skip unreadable files)")


def _drop_bad(paths: list[Path], bad: dict[int, str], folder: Path, cfg: Any) -> list[Path]:
    """``paths`` without the bad ones when data.skip_bad_files is on (with one warning line),
    else the one-line error."""
    if not bad:
        return paths
    if not _skip_bad(cfg) or len(bad) == len(paths):
        _refuse_bad(paths, bad, folder, len(paths))
    log.warning("image_folder: skipped %d unreadable image file%s of %d below %s (first: %s)",
                len(bad), "" if len(bad) == 1 else "s", len(paths), folder, bad[min(bad)])
    return [p for i, p in enumerate(paths) if i not in bad]


@DATASETS.register("image_folder")
def image_folder(cfg: Any) -> DataSource:
    """Every PNG/JPEG below ``data.root`` (recursive, sorted paths). All images are brought to
    ``data.image_size`` (default: the first image's size). Held in memory when the float32
    tensor fits in ``data.max_memory_mb``, else decoded on the fly by worker processes.

    Every file is decoded once up front (the in-memory load itself, or a check pass before
    streaming), so an unreadable file is a one-line error naming it - or, with
    ``data.skip_bad_files``, left out with one warning line that counts them."""
    folder = _required_root("image_folder", cfg, "folder of PNG/JPEG images")
    if not folder.is_dir():
        raise DataError(f"image_folder: data.root {str(folder)!r} is not a folder")
    paths = list_image_files(folder)
    if not paths:
        raise DataError(f"image_folder: no .png/.jpg/.jpeg files below {folder}")
    size, channels = _folder_geometry(paths, cfg, folder)
    bad: dict[int, str] = {}
    info = {"files": str(folder), "split": "all", "resize_filter": cfg.resize_filter}
    nbytes = len(paths) * channels * size * size * 4
    if nbytes > cfg.max_memory_mb * 2**20:
        probe = torch.utils.data.DataLoader(ProbeImages(paths), batch_size=64, num_workers=cfg.num_workers)
        for index, reasons in probe:
            bad.update((int(i), r) for i, r in zip(index, reasons) if r)
        paths = _drop_bad(paths, bad, folder, cfg)
        if bad:
            info["skipped_bad_files"] = len(bad)
        dataset = ImageFileDataset(paths, size, channels, cfg.resize_filter)
        empty = torch.empty(0, channels, size, size)
        return DataSource("image_folder", empty, kind="image", info=info, stream=dataset,
                          num_workers=cfg.num_workers)
    dataset = ImageFileDataset(paths, size, channels, cfg.resize_filter)
    loader = torch.utils.data.DataLoader(TolerantImages(dataset), batch_size=256, num_workers=cfg.num_workers)
    batches = []
    for index, batch, reasons in loader:
        bad.update((int(i), r) for i, r in zip(index, reasons) if r)
        batches.append(batch)
    data = torch.cat(batches)
    kept = _drop_bad(paths, bad, folder, cfg)
    if len(kept) < len(paths):
        keep = torch.ones(len(paths), dtype=torch.bool)
        keep[sorted(bad)] = False
        data = data[keep]
        info["skipped_bad_files"] = len(bad)
    return DataSource("image_folder", data, kind="image", info=info, num_workers=cfg.num_workers)
