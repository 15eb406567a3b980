"""``occamgan sample``: draw samples from a trained run and write them as PNGs or an .npz."""
from __future__ import annotations

from pathlib import Path

import typer

from ..cli import app, user_errors


@app.command()
@user_errors
def sample(
    run_dir: Path = typer.Argument(..., help="Run directory written by `occamgan train`."),
    n: int = typer.Option(64, "--n", min=1, help="Number of samples."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the samples (created; must be empty unless --overwrite)."),
    mc_dropout: bool = typer.Option(False, "--mc-dropout", help="Keep dropout active (a fresh mask per sample; BatchNorm frozen)."),
    fmt: str = typer.Option("png", "--format", help="png: one file per image; npz: samples.npz (float samples + uint8 images)."),
    seed: int = typer.Option(0, "--seed", min=0, max=2**63 - 1, help="Seed of the latent draws."),
    raw: bool = typer.Option(False, "--raw", help="Use the raw generator instead of its EMA."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Write into a non-empty --out folder."),
) -> None:
    """Sample N images (or points) from a run's EMA generator, in eval mode."""
    from ..api import load_run
    from ..sample_files import check_output, export_samples

    check_output(out, fmt, overwrite)  # fail before loading the run and sampling
    files = export_samples(load_run(run_dir), n, out, fmt, seed=seed, use_ema=not raw, mc_dropout=mc_dropout,
                           overwrite=overwrite)
    names = ", ".join(f.name for f in files[:3]) + (f", ... ({len(files)} files)" if len(files) > 3 else "")
    typer.echo(f"wrote {n} samples to {out}: {names}")
