"""Figures of generated samples: a scatter of real vs generated points for toy data, a PNG
grid for images."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from torch import Tensor  # noqa: E402

from .data.base import DataSource  # noqa: E402


def scatter_real_fake(real: Tensor, fake: Tensor, path: str | Path, title: str = "") -> Path:
    path = Path(path)
    fig, ax = plt.subplots(figsize=(5, 5), dpi=110)
    r, f = real[:2000].cpu().numpy(), fake[:2000].cpu().numpy()
    ax.scatter(r[:, 0], r[:, 1], s=3, alpha=0.5, label="real", color="tab:blue")
    ax.scatter(f[:, 0], f[:, 1], s=3, alpha=0.5, label="generated", color="tab:orange")
    ax.set_aspect("equal")
    ax.legend(loc="upper right", markerscale=4)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def save_samples_figure(data: DataSource, fake: Tensor, path: str | Path, title: str = "") -> Path:
    """Write the figure that suits the data kind and return its path."""
    if data.kind == "image":
        from .image_grid import save_image_grid

        return save_image_grid(fake[:64], path)
    if data.sample_shape != (2,):
        raise ValueError(f"no plot for samples of shape {data.sample_shape}")
    return scatter_real_fake(data.data, fake, path, title)
