"""Write generated samples to disk: one PNG per image (the input of PNG-based metric tools) or
one ``.npz`` file; toy points as PNG are their scatter plot plus the ``.npz``.

The ``.npz`` holds ``samples`` (float32, exactly as generated: images in [-1, 1] as N x C x H x W,
toy points as N x d) and, for images, ``images`` (uint8 N x H x W x C, the PNG pixel values),
so the file is also readable by the ``npz`` data set.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from .errors import OccamError
from .image_grid import save_images, to_uint8

SampleFormat = Literal["png", "npz"]


class OutputExistsError(OccamError):
    """The output folder of an export already holds files."""


def check_output(out: Path, fmt: str, overwrite: bool) -> None:
    """Refuse an unknown format, a file, or a non-empty folder (unless ``overwrite``)."""
    if fmt not in ("png", "npz"):
        raise OccamError(f"--format must be png or npz (got {fmt!r})")
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"--out {str(out)!r} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise OutputExistsError(f"--out {str(out)!r} is not empty; choose another folder or pass --overwrite")


def write_samples(samples: Tensor, out: str | Path, fmt: SampleFormat = "png", overwrite: bool = False) -> list[Path]:
    """Write ``samples`` into folder ``out`` as ``fmt``; returns the written files."""
    out = Path(out)
    is_image = samples.ndim == 4
    if fmt == "png" and not is_image and tuple(samples.shape[1:]) != (2,):
        raise OccamError(f"--format png needs images or 2-D points, got samples of shape {tuple(samples.shape)}; "
                         "use --format npz")
    check_output(out, fmt, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    if fmt == "png" and is_image:
        return save_images(samples, out)
    if fmt == "png":  # toy points: their scatter, and the numbers beside it
        from .plots import scatter_real_fake

        return [scatter_real_fake(None, samples, out / "samples.png", f"{len(samples)} samples"),
                *write_samples(samples, out, "npz", overwrite=True)]
    arrays = {"samples": samples.detach().cpu().float().numpy()}
    if is_image:
        arrays["images"] = to_uint8(samples)
    path = out / "samples.npz"
    np.savez_compressed(path, **arrays)
    return [path]


def available_memory() -> int | None:
    """Bytes of host memory available to a new allocation (Linux: MemAvailable), or None."""
    from .build import available_bytes

    return available_bytes(torch.device("cpu"))


def export_samples(run: Any, n: int, out: str | Path, fmt: SampleFormat = "png", *, seed: int = 0,
                   use_ema: bool = True, mc_dropout: bool = False, overwrite: bool = False,
                   batch: int | None = None) -> list[Path]:
    """Draw ``n`` samples of a loaded run and write them: image PNGs batch by batch (any n, bounded
    memory); an ``.npz`` (or a toy scatter, which comes with one) holds them all at once, so it is
    refused up front when it would not fit in memory."""
    from .sampling import SAMPLE_BATCH, iter_samples

    out = Path(out)
    check_output(out, fmt, overwrite)
    generator = run.generator_for(use_ema)
    batch = batch or SAMPLE_BATCH
    batches = iter_samples(generator, n, run.latent_dim, seed=seed, mc_dropout=mc_dropout, device=run.device,
                           batch=batch)
    first = next(batches)
    if fmt == "png" and first.ndim == 4:
        out.mkdir(parents=True, exist_ok=True)
        files = save_images(first, out)
        for i, images in enumerate(batches, 1):
            files += save_images(images, out, start=i * batch)
        return files
    need = n * first[0].numel() * (4 + (1 if first.ndim == 4 else 0)) * 2  # the arrays and their compression
    free = available_memory()
    if free is not None and need > free:
        raise OccamError(f"--n {n}: {need / 2**30:.1f} GiB of samples would not fit in the {free / 2**30:.1f} GiB of "
                         "memory available; use --format png for images, or a smaller --n")
    return write_samples(torch.cat([first, *batches]), out, fmt, overwrite=True)
