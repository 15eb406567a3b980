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

    abort, click_error, no_args = _click_exceptions()
    try:
        code = app(standalone_mode=False)
    except no_args as exc:  # `occamgan` alone: the help, as asked
        typer.echo(exc.ctx.get_help() if getattr(exc, "ctx", None) is not None else str(exc))
        sys.exit(0)
    except click_error as exc:  # a bad option or argument: one line, like every user error
        command = exc.ctx.command_path if getattr(exc, "ctx", None) is not None else "occamgan"
        typer.echo(f"error: {exc.format_message()} (see `{command} --help`)", err=True)
        sys.exit(exc.exit_code)
    except (abort, KeyboardInterrupt):
        typer.echo("interrupted", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


def _click_exceptions() -> tuple[type, type, type]:
    """(Abort, ClickException, NoArgsIsHelpError) of the click that typer runs on (typer >= 0.20
    vendors it as typer._click)."""
    try:
        from typer._click.exceptions import ClickException, NoArgsIsHelpError

        return typer.Abort, ClickException, NoArgsIsHelpError
    except ImportError:
        from click.exceptions import Abort, ClickException

        try:
            from click.exceptions import NoArgsIsHelpError
        except ImportError:  # click < 8.2 prints the help itself
            NoArgsIsHelpError = Abort
    return Abort, ClickException, NoArgsIsHelpError
