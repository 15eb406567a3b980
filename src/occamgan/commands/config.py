"""``occamgan config``: print the resolved configuration (defaults <- file <- overrides)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..cli import app, user_errors


@app.command("config")
@user_errors
def show_config(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML file of config sections."),
    set_: Optional[list[str]] = typer.Option(None, "--set", "-s", metavar="KEY=VALUE", help="Dotted override KEY=VALUE (repeatable)."),
) -> None:
    """Validate and print the full configuration as YAML: every key with its value."""
    from ..api import resolve_config

    typer.echo(resolve_config(config, set_ or []).to_yaml(), nl=False)
