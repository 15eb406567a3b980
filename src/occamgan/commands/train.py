"""``occamgan train``: train a GAN and write a run directory."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from ..cli import app, user_errors

ConfigOpt = typer.Option(None, "--config", "-c", help="YAML file of config sections (see `occamgan config`).")
SetOpt = typer.Option(None, "--set", "-s", metavar="KEY=VALUE", help="Dotted override KEY=VALUE, e.g. train.steps=200 (repeatable; applied after --config).")
OutOpt = typer.Option(None, "--out", "-o", help="Run directory (default: runs/<data>-<objective>-s<seed>-<time>).")


@app.command()
@user_errors
def train(
    config: Optional[Path] = ConfigOpt,
    set_: Optional[list[str]] = typer.Option(None, "--set", "-s", metavar="KEY=VALUE", help=SetOpt.help),
    out: Optional[Path] = OutOpt,
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing run directory."),
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress", help="Progress bar (default: when stderr is a terminal)."),
) -> None:
    """Train a GAN. With no arguments: the default toy experiment (8 Gaussians on a ring, ~1 min
    on a CPU). Writes config.yaml, metrics.jsonl, checkpoints/, samples.png and summary.json."""
    from ..api import train as run_training

    result = run_training(config, overrides=set_ or [], out=out, resume=resume, overwrite=overwrite, progress=progress)
    print_summary(result.summary, result.run_dir)


def print_summary(summary: dict, run_dir: Path) -> None:
    console = Console()
    # the title as its own line: a table title wraps at the (narrow) table's width
    console.print(f"scores at step {summary['step']} ({summary['generator']} generator, {summary['eval_samples']} samples)")
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in summary["metrics"].items():
        if key.startswith("protocol_") or isinstance(value, dict):  # how a score was measured, not a score
            continue
        table.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
    console.print(table)
    console.print(f"{summary['steps_per_second']:.1f} steps/s")
    console.print(f"plot: {summary['plot']}")
    console.print(f"run:  {run_dir}")
