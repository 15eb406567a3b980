"""Figures of generated samples: a scatter of real vs generated points for toy data, a PNG
grid for images."""
from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor

from .data.base import DataSource


def new_figure(figsize: tuple[float, float], dpi: int = 100):
    """(figure, axes) on an Agg canvas of their own: no pyplot state and no backend switch, so
    writing a plot never touches a user's open figures (a notebook's, say)."""
    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def scatter_real_fake(real: Tensor | None, fake: Tensor, path: str | Path, title: str = "") -> Path:
    """Generated (and real, when given) 2-D points, up to 2,000 of each. Drawn on a Figure of its
    own (no pyplot), so a user's open figures and matplotlib backend are left alone."""
    path = Path(path)
    fig, ax = new_figure((5, 5), dpi=110)
    f = fake[:2000].detach().cpu().numpy()
    if real is not None:
        r = real[:2000].detach().cpu().numpy()
        ax.scatter(r[:, 0], r[:, 1], s=3, alpha=0.5, label="real", color="tab:blue")
    ax.scatter(f[:, 0], f[:, 1], s=3, alpha=0.5, label="generated", color="tab:orange")
    ax.set_aspect("equal")
    ax.legend(loc="upper right", markerscale=4)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    return path


def save_samples_figure(data: DataSource, fake: Tensor, path: str | Path, title: str = "") -> Path:
    """Write the figure that suits the data kind and return its path."""
    if data.kind == "image":
        from .image_grid import save_image_grid

        return save_image_grid(fake[:64], path)
    if len(data.sample_shape) != 1:
        raise ValueError(f"no plot for samples of shape {data.sample_shape}")
    if data.sample_shape[0] == 1:  # 1-D points: against a zero second coordinate
        fake, real = (t.reshape(-1, 1).expand(-1, 2) * t.new_tensor([1.0, 0.0]) for t in (fake, data.data))
        return scatter_real_fake(real, fake, path, title)
    # D > 2 (e.g. ppca): the first two coordinates
    suffix = "" if data.sample_shape[0] == 2 else f" (coordinates 1-2 of {data.sample_shape[0]})"
    return scatter_real_fake(data.data[:, :2], fake[:, :2], path, title + suffix)
