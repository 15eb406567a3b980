"""``occamgan select``: rank a finished sweep's runs by held-out evidence (or another score)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer

from ..cli import app, user_errors


def print_selection(selection) -> None:
    from ..sweep.select import RANKING_MD

    typer.echo((selection.out / RANKING_MD).read_text())
    best = selection.best
    if best is not None:
        keys = [k for k in best if k not in ("mean", "std", "seeds", "best_seed_wins")]
        shown = ", ".join(f"{k}={best[k]}" for k in keys) or "the base config"
        spread = "" if math.isnan(best["std"]) else f" ± {best['std']:.2g}"
        typer.echo(f"selected by {selection.score}: {shown} ({best['mean']:.4g}{spread} over {best['seeds']} seeds)")


@app.command("select")
@user_errors
def select_command(
    sweep_dir: Path = typer.Argument(..., help="Sweep directory written by `occamgan sweep`."),
    by: str = typer.Option("evidence", "--by", help="Score to rank by (evidence is computed where a run lacks it)."),
    n: Optional[int] = typer.Option(None, "--n", min=1, help="Evidence: held-out points (default: eval.evidence_n of each run)."),
    chains: Optional[int] = typer.Option(None, "--chains", min=1, help="Evidence: AIS chains per point."),
    steps: Optional[int] = typer.Option(None, "--steps", min=2, help="Evidence: AIS intermediate distributions."),
    sigma: Optional[float] = typer.Option(None, "--sigma", help="Evidence: relaxation width (default: fitted on the validation split)."),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Write plots/select_<score>_vs_<key>.png."),
) -> None:
    """Rank the runs and grid points of a finished sweep (mean over seeds, paired wins per seed)
    and write ranking.md and ranking.csv next to results.csv."""
    from ..sweep import select

    params = {"evidence_n": n, "evidence_chains": chains, "evidence_steps": steps, "evidence_sigma": sigma}
    print_selection(select(sweep_dir, by, params=params, log=lambda msg: typer.echo(msg, err=True), plots=plots))
