"""The divergence table (f''(1), tail exponents, behaviour) and the plot of f'' spectra that
``occamgan divergences`` prints and draws."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from ..errors import ConfigError, OccamError
from ..registry import UnknownNameError
from .base import DIVERGENCES, FDivergence, classify_tails, get_divergence


@dataclass(frozen=True)
class DivergenceRow:
    name: str
    formula: str
    curvature_at_one: float
    a0: float
    ainf: float
    bad_sample_cost_finite: bool
    missed_mode_cost_finite: bool
    behaviour: str


def divergence_row(div: FDivergence) -> DivergenceRow:
    a0, ainf = div.tail_exponents()
    return DivergenceRow(div.name, div.formula, div.curvature_at_one(), a0, ainf,
                         bad_sample_cost_finite=a0 < 2 - 1e-3, missed_mode_cost_finite=ainf > 1 + 1e-3,
                         behaviour=classify_tails(a0, ainf))


def _checked_names(names: Sequence[str] | None) -> list[str]:
    """Registered names (all by default); an unknown one is a user error naming the allowed ones."""
    chosen = list(names) if names else DIVERGENCES.names()
    for name in chosen:
        try:
            get_divergence(name)
        except UnknownNameError as exc:
            raise ConfigError(str(exc)) from None
    return chosen


def divergence_table(names: Sequence[str] | None = None) -> list[DivergenceRow]:
    """One :class:`DivergenceRow` per registered divergence (f''(1), tails, behaviour)."""
    return [divergence_row(get_divergence(n)) for n in _checked_names(names)]


def plot_spectra(path: str | Path, names: Sequence[str] | None = None,
                 log_u_range: float = 8.0, overwrite: bool = True) -> Path:
    """Log-log plot of f''(u) of each divergence (the 'spectrum' that defines it), to a PNG.

    With ``overwrite=False`` an existing file is an error (nothing is overwritten)."""
    out = Path(path)
    if out.exists() and not overwrite:
        raise OccamError(f"{str(out)!r} exists; pass --overwrite to replace it")
    if out.suffix.lower() != ".png":
        raise OccamError(f"the spectra plot is a PNG; got {str(out)!r}")
    names = _checked_names(names)
    from ..plots import new_figure

    u = torch.logspace(-log_u_range, log_u_range, 400, base=10.0, dtype=torch.float64)
    fig, ax = new_figure((6.4, 4.4), dpi=110)
    styles = ["-", "--", ":", "-."]  # overlapping spectra (gan/js, ns/neyman tails) stay visible
    for i, name in enumerate(names):
        div = get_divergence(name)
        a0, ainf = div.tail_exponents()
        ax.loglog(u.numpy(), div.f_second(u).numpy(), ls=styles[i % len(styles)], lw=1.6,
                  label=f"{name} (a0={a0:.2g}, ainf={ainf:.2g})")
    ax.axvline(1.0, color="grey", lw=0.5)
    ax.set_xlabel("u = p(x) / q(x)")
    ax.set_ylabel("f''(u)")
    ax.set_title("f'' spectra: left tail = sample quality, right tail = diversity", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    return out

