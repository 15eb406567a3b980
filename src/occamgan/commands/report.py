"""``occamgan report``: one self-contained HTML report of a run or a sweep directory."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..cli import app, user_errors


@app.command()
@user_errors
def report(
    path: Path = typer.Argument(..., help="Run directory (`occamgan train`) or sweep directory (`occamgan sweep`)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="HTML file to write (default: PATH/report.html)."),
) -> None:
    """Write an HTML report (config, curves, scores, samples; for a sweep the mean ± std table,
    plots and runs) that needs no network: images are embedded, nothing is linked outside."""
    from ..report import write_report

    written = write_report(path, out)
    typer.echo(f"wrote {written}")
