"""The ``occamgan`` command line: a thin typer shell over :mod:`occamgan.api`.

Each command lives in its own module under :mod:`occamgan.commands` and registers itself on
:data:`app`. User errors (:class:`occamgan.errors.OccamError`) become one line on stderr and exit
code 2, never a traceback.
"""
from __future__ import annotations

import functools
import sys
from typing import Callable, TypeVar

import typer

from .errors import OccamError

app = typer.Typer(
    name="occamgan",
    help="Train and judge GANs the Bayesian way: objectives, Occam regularisers, competitive "
    "optimisers, metrics, sharpness and sweeps.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click help: no <bool> metavars on flags
)

F = TypeVar("F", bound=Callable)


def _version(value: bool) -> None:
    if value:
        from . import __version__

        typer.echo(f"occamgan {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """Train and judge GANs the Bayesian way."""


def user_errors(fn: F) -> F:
    """Turn OccamError into a one-line message on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except OccamError as exc:
            from .distributed import rank_label  # a data-parallel rank says which one it is

            where = rank_label()
            typer.echo(f"error{f' ({where})' if where else ''}: {exc}", err=True)
            raise typer.Exit(getattr(exc, "exit_code", 2)) from None

    return wrapper  # type: ignore[return-value]


def main() -> None:
    from . import commands  # noqa: F401  (registers every command)

    try:
        app()
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
