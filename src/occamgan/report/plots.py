"""The report's plots, rendered with matplotlib's Agg canvas to PNG bytes in memory.

Figures are made with the object API (``Figure`` on a ``FigureCanvasAgg``), never through
pyplot: writing a report (which every training run may do at its end, in a notebook too) then
neither switches the process's backend (``matplotlib.use`` would, closing the user's open
figures) nor adds figures to pyplot's global list, and it needs no display.
"""
from __future__ import annotations

import io
from typing import Any, Sequence

FIGSIZE = (6.0, 3.4)
SMALL_FIGSIZE = (4.2, 3.0)
DPI = 100


def _figure(figsize: tuple[float, float]):
    """A figure and its one axes on an Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=DPI)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def _symlog_if_wide(ax, values: Sequence[float]) -> None:
    """A symmetric log scale when the values span many orders of magnitude (a loss that blew up
    would otherwise flatten the rest of the curve)."""
    magnitudes = [abs(v) for v in values if v != 0]
    if len(magnitudes) > 1 and max(magnitudes) / min(magnitudes) > 1e4:
        ax.set_yscale("symlog", linthresh=max(min(magnitudes), 1e-12))


def curves(lines: dict[str, tuple[Sequence[float], Sequence[float]]], title: str, ylabel: str = "",
           small: bool = False, auto_scale: bool = True) -> bytes:
    """One line per ``{label: (steps, values)}`` against the training step."""
    fig, ax = _figure(SMALL_FIGSIZE if small else FIGSIZE)
    every = []
    for label, (xs, ys) in lines.items():
        marker = "o" if len(xs) <= 30 else None
        ax.plot(xs, ys, marker=marker, markersize=3, linewidth=1.2, label=label)
        every.extend(ys)
    if auto_scale:
        _symlog_if_wide(ax, every)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("step")
    if ylabel:
        ax.set_ylabel(ylabel)
    if len(lines) > 1:
        ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _png(fig)


def bars(values: Sequence[float], title: str, xlabel: str = "index") -> bytes:
    """A bar per value (a spectrum of top eigenvalues)."""
    fig, ax = _figure(SMALL_FIGSIZE)
    ax.bar([i + 1 for i in range(len(values))], values)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.grid(alpha=0.3, axis="y")
    return _png(fig)


def errorbars(x_labels: Sequence[Any], lines: dict[str, tuple[list[float | None], list[float]]],
              title: str, xlabel: str, ylabel: str) -> bytes:
    """Mean with standard-deviation error bars at each x value, one line per ``{label: (means,
    stds)}`` (a None mean is a missing point). Numeric x values are placed on a numeric axis,
    others evenly with their text as tick labels."""
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in x_labels)
    positions = list(x_labels) if numeric else list(range(len(x_labels)))
    fig, ax = _figure(SMALL_FIGSIZE)
    for label, (means, stds) in lines.items():
        xs = [p for p, m in zip(positions, means) if m is not None]
        ms = [m for m in means if m is not None]
        ss = [s for m, s in zip(means, stds) if m is not None]
        ax.errorbar(xs, ms, yerr=ss, marker="o", markersize=4, capsize=3, label=label or None)
    if numeric and all(isinstance(v, int) for v in x_labels):
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if not numeric:
        ax.set_xticks(positions, [str(v) for v in x_labels], rotation=30 if len(x_labels) > 4 else 0, fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if any(lines) and len(lines) > 1:
        ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _png(fig)
