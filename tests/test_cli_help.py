"""Every command of the CLI answers --help (generated from the commands registered on the app, so
a new command is covered without editing this file), and no boolean flag shows a metavar."""
from __future__ import annotations

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner

import occamgan.commands  # noqa: F401  (registers every command)
from occamgan.cli import app


def command_paths() -> list[list[str]]:
    root = get_command(app)
    paths = []

    def walk(group, prefix):
        for name, cmd in sorted(getattr(group, "commands", {}).items()):
            paths.append([*prefix, name])
            walk(cmd, [*prefix, name])

    walk(root, [])
    return paths


def test_there_are_commands():
    names = {p[0] for p in command_paths()}
    assert {"train", "config", "sample", "eval", "sharpness", "sweep", "divergences", "features", "report"} <= names


@pytest.mark.parametrize("path", command_paths(), ids=" ".join)
def test_help(path):
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output and " ".join(path) in result.output
    assert "<bool>" not in result.output and "BOOLEAN" not in result.output
    assert "Traceback" not in result.output


def test_root_help_and_version():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0 and "train" in result.output
    version = CliRunner().invoke(app, ["--version"])
    assert version.exit_code == 0 and version.output.startswith("occamgan ")
