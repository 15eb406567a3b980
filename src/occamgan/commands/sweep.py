"""``occamgan sweep``: a grid of configs x seeds in parallel processes, resumable, summarised."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..cli import app, user_errors


@app.command()
@user_errors
def sweep(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Base YAML config (default: the schema defaults)."),
    grid: Optional[list[str]] = typer.Option(None, "--grid", "-g", metavar="KEY=V1,V2", help="KEY=V1,V2,... : one axis of the grid (repeatable; the sweep runs their product)."),
    seeds: int = typer.Option(1, "--seeds", "-n", help="Seeds per grid point: base seed + 0..N-1."),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", help="Parallel processes, one torch thread each (default: the core count)."),
    out: Path = typer.Option(..., "--out", "-o", help="Sweep directory; rerunning the same command resumes it."),
    set_: Optional[list[str]] = typer.Option(None, "--set", "-s", metavar="KEY=VALUE", help="Dotted override KEY=VALUE of the base config (repeatable)."),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Write plots/<metric>.png."),
    select_by: Optional[str] = typer.Option(None, "--select", help="After the sweep, rank runs and grid points by this score (evidence: computed where missing); writes ranking.md/csv."),
    backend: str = typer.Option("local", "--backend", help="Where runs execute: local (a process pool) or ray (one Ray task per run; pip install occamgan[ray])."),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster to join (auto, or HOST:PORT; default: start a local one)."),
    gpus_per_run: float = typer.Option(0.0, "--gpus-per-run", help="Ray: GPUs per run (fractions share a GPU)."),
    cpus_per_run: float = typer.Option(1.0, "--cpus-per-run", help="Ray: CPUs per run (its torch threads)."),
) -> None:
    """Run every combination of the --grid values for --seeds seeds. Every config is checked
    before the first run starts; finished runs are skipped on a rerun and killed ones resume
    from their last checkpoint. Writes results.csv, table.md (mean ± std over seeds) and plots/."""
    from ..sweep import run_sweep

    result = run_sweep(config, grid or [], seeds, out, jobs=jobs, overrides=set_ or [],
                       log=lambda msg: typer.echo(msg, err=True), plots=plots, backend=backend, address=address,
                       gpus_per_run=gpus_per_run, cpus_per_run=cpus_per_run)
    typer.echo(result.table_path.read_text())
    c = result.counts
    typer.echo(f"{c['done']} trained, {c['skipped']} already finished, {c['diverged']} diverged, {c['error']} failed")
    typer.echo(f"results: {result.results_path}")
    if c["error"]:
        typer.echo(f"error: {c['error']} run(s) failed; see failure.json in their run directories and rerun", err=True)
        raise typer.Exit(1)
    if select_by:
        from .select import print_selection
        from ..sweep import select

        print_selection(select(out, select_by, log=lambda msg: typer.echo(msg, err=True), plots=plots))
