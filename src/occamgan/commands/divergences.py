"""``occamgan divergences``: the f-divergence table (f''(1), tail exponents, behaviour) and a
log-log plot of the f'' spectra; a thin shell over :mod:`occamgan.divergences`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..cli import app, user_errors


def _finite(flag: bool) -> str:
    return "finite" if flag else "infinite"


@app.command()
@user_errors
def divergences(
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write a log-log plot of f''(u) to this PNG."),
    name: Optional[list[str]] = typer.Option(None, "--name", "-n", help="Only these divergences (repeatable; default: all registered)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out file."),
) -> None:
    """Print the registered f-divergences: f''(1), the tail exponents a0 (u -> 0, samples the data do
    not support) and ainf (u -> inf, data the model misses), the cost of one bad sample (f(0)) and of
    a missed mode (f'(inf)), and mode-seeking / mode-covering / balanced (a0 + ainf vs 3)."""
    from ..divergences import divergence_table, plot_spectra

    rows = divergence_table(name)
    if out is not None:  # check the output before printing, so a refusal is the only output
        plot_spectra(out, [r.name for r in rows], overwrite=overwrite)
    table = Table(title="f-divergences D_f(p, q) = E_q f(p/q), f(1) = f'(1) = 0; f''(u) ~ u^-a0 (u->0), u^-ainf (u->inf)")
    for column, justify in [("name", "left"), ("f(u)", "left"), ("f''(1)", "right"), ("a0", "right"),
                            ("ainf", "right"), ("bad sample f(0)", "left"), ("missed mode f'(inf)", "left"),
                            ("behaviour", "left")]:
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for r in rows:
        table.add_row(r.name, escape(r.formula), f"{r.curvature_at_one:.4g}", f"{r.a0:.3f}", f"{r.ainf:.3f}",
                      _finite(r.bad_sample_cost_finite), _finite(r.missed_mode_cost_finite), r.behaviour)
    console = Console(width=max(Console().width, 150))
    console.print(table)
    console.print("tail exponents: minus the log-log slope of f'' at u = e^-16 and e^16 (a reconstruction of "
                  "Shannon et al. 2020's tail weight; docs/methods.md section 5)")
    if out is not None:
        console.print(f"plot: {out}")
