"""``occamgan sharpness``: top Hessian eigenvalues of a trained run's generator (and critic) loss."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..cli import app, user_errors


@app.command()
@user_errors
def sharpness(
    run_dir: Path = typer.Argument(..., help="Run directory written by `occamgan train`."),
    k: Optional[int] = typer.Option(None, "--k", "-k", min=1, help="Number of top eigenvalues (default: eval.sharpness_k of the run)."),
    batches: Optional[int] = typer.Option(None, "--batches", min=1, help="Data batches to average over (default: eval.sharpness_batches)."),
    player: str = typer.Option("g", "--player", help="Whose loss: g (L_G w.r.t. the generator), d (L_D w.r.t. the critic) or both."),
    reduce: Optional[str] = typer.Option(None, "--reduce", help="Over batches: eigenvalues (mean of per-batch top-k) or hessian (top-k of the mean Hessian); default: eval.sharpness_reduce."),
    raw: bool = typer.Option(False, "--raw", help="Measure the raw generator instead of its EMA."),
    record: bool = typer.Option(True, "--record/--no-record", help="Append to metrics.jsonl and merge into summary.json."),
) -> None:
    """Sharpness of a run: the top eigenvalues of the Hessian of its loss (Lanczos on
    Hessian-vector products), averaged over seeded training batches, networks in eval mode."""
    from ..diagnostics.hessian import sharpness_of_run

    players = ("g", "d") if player == "both" else (player,)
    results = sharpness_of_run(run_dir, players, k=k, n_batches=batches, use_ema=False if raw else None,
                               reduce=reduce, record=record)
    for name, value in results.items():
        shown = ", ".join(f"{v:.6g}" for v in value) if isinstance(value, list) else f"{value:.6g}"
        typer.echo(f"{name:<20} {shown}")
