"""Image data sets: MNIST, Fashion-MNIST, CIFAR-10, image folders, .npz arrays, sklearn digits.

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
"""
from __future__ import annotations

import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..errors import DataError
from .base import DATASETS, DataSource
from .download import RemoteFile, candidate_dirs, data_root, fetch_missing
from .image_files import (
    ImageFileDataset,
    image_channels,
    list_image_files,
    prepare_array,
    read_cifar_batches,
    read_idx_pair,
    read_npz,
    to_model_range,
)

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
CIFAR10_DIR = "cifar-10-batches-py"
#: scikit-learn's digits have no official split: the last DIGITS_TEST images are the test split
DIGITS_TEST = 297


def image_source(name: str, images: np.ndarray, labels: np.ndarray | None, cfg: Any, **info: Any) -> DataSource:
    """Prepare N x H x W x C uint8 ``images`` (channels, size) and wrap them, scaled to [-1, 1]."""
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
def _cifar_dir(cfg: Any) -> Path:
    dirs = candidate_dirs(cfg.root, "cifar10")
    for d in dirs:
        for folder in (d / CIFAR10_DIR, d):
            if (folder / "test_batch").is_file():
                return folder
    archive = next((d / CIFAR10.name for d in dirs if (d / CIFAR10.name).is_file()), None)
    if archive is None:
        archive = fetch_missing("cifar10", [CIFAR10], cfg.root, cfg.download) / CIFAR10.name
    with tarfile.open(archive) as tar:
        tar.extractall(archive.parent, filter="data")
    return archive.parent / CIFAR10_DIR


@DATASETS.register("cifar10")
def cifar10(cfg: Any) -> DataSource:
    """CIFAR-10 (Krizhevsky 2009) python batches: 50,000 train / 10,000 test RGB 32 x 32."""
    folder = _cifar_dir(cfg)
    names = [f"data_batch_{i}" for i in range(1, 6)] if cfg.split == "train" else ["test_batch"]
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise DataError(f"cifar10: missing {', '.join(missing)} in {folder}")
    x, y = read_cifar_batches([folder / n for n in names])
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
def _folder_geometry(paths: list[Path], cfg: Any) -> tuple[int, int]:
    """(size, channels): from the config, else from the first image (which must be square)."""
    with Image.open(paths[0]) as first:
        channels = cfg.channels or image_channels(first.mode)
        size = cfg.image_size
        if size is None:
            if first.size[0] != first.size[1]:
                raise DataError(f"image_folder: {paths[0]} is not square; set data.image_size")
            size = first.size[0]
    _check_channels(channels)
    return size, channels


@DATASETS.register("image_folder")
def image_folder(cfg: Any) -> DataSource:
    """Every PNG/JPEG below ``data.root`` (recursive, sorted paths). All images are brought to
    ``data.image_size`` (default: the first image's size). Held in memory when the float32
    tensor fits in ``data.max_memory_mb``, else decoded on the fly by worker processes."""
    folder = _required_root("image_folder", cfg, "folder of PNG/JPEG images")
    paths = list_image_files(folder)
    if not paths:
        raise DataError(f"image_folder: no .png/.jpg/.jpeg files below {folder}")
    size, channels = _folder_geometry(paths, cfg)
    dataset = ImageFileDataset(paths, size, channels, cfg.resize_filter)
    info = {"files": str(folder), "split": "all", "resize_filter": cfg.resize_filter}
    nbytes = len(paths) * channels * size * size * 4
    if nbytes > cfg.max_memory_mb * 2**20:
        empty = torch.empty(0, channels, size, size)
        return DataSource("image_folder", empty, kind="image", info=info, stream=dataset,
                          num_workers=cfg.num_workers)
    loader = torch.utils.data.DataLoader(dataset, batch_size=256, num_workers=cfg.num_workers)
    data = torch.cat([batch for _, batch in loader])
    return DataSource("image_folder", data, kind="image", info=info, num_workers=cfg.num_workers)
