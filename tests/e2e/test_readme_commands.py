"""Every command of the README's command-line block runs, in a cheap form, on a fresh working
directory: the block is parsed from README.md, so a command added there is run here too.

Cheap form: trainings and sweeps get a few steps of a tiny model, evidence a handful of AIS steps,
sweeps one seed; `RUN` stands for a tiny image run, and its `--features lenet` for a classifier
trained on the digits in a temporary cache (the real LeNet is trained on MNIST)."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

import occamgan
import occamgan.commands  # noqa: F401
from occamgan.cli import app

ROOT = Path(__file__).resolve().parents[2]
CHEAP_TRAIN = ["--set", "train.steps=4", "--set", "train.batch_size=16", "--set", "eval.n_samples=64",
               "--set", "eval.w2_samples=32", "--set", "train.checkpoint_every=2", "--set", "train.log_every=2"]
CHEAP_EVIDENCE = ["--n", "8", "--chains", "2", "--steps", "8", "--leapfrog", "2"]


def readme_commands() -> list[list[str]]:
    text = (ROOT / "README.md").read_text()
    block = text.split("## The command line", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    return [shlex.split(line.split("  #", 1)[0]) for line in block.splitlines() if line.startswith("occamgan")]


def cheap(argv: list[str], image_run: Path) -> list[str]:
    args = [str(image_run) if a == "RUN" else a for a in argv[1:]]
    command = args[0] if args else ""
    args = [re.sub(r"^train\.steps=\d+$", "train.steps=6", a) for a in args]  # a resume extends 4 steps
    if command in ("train", "sweep") and "--resume" not in args:
        args += CHEAP_TRAIN
    if command == "sweep":
        args = [("1" if prev == "--seeds" else a) for prev, a in zip([""] + args, args)] + ["--jobs", "1"]
    if command in ("evidence", "select"):
        args += CHEAP_EVIDENCE if command == "evidence" else ["--n", "8", "--chains", "2", "--steps", "8"]
    if command == "eval":
        args = [("lenet_readme" if prev == "--features" else a) for prev, a in zip([""] + args, args)]
        args += ["--n", "40", "--n-ref", "40"]
    return args


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    from occamgan.metrics.domain_classifier import save_classifier, train_classifier
    from occamgan.config import build_config
    from occamgan.data.base import build_data

    (tmp_path / "configs").symlink_to(ROOT / "configs")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    train, test = (build_data(build_config({"data": {"name": "digits", "split": s}})) for s in ("train", "test"))
    trained = train_classifier(train.data, train.labels, test.data, test.labels, epochs=1, batch_size=64)
    save_classifier(trained, tmp_path / "cache" / "occamgan" / "features" / "lenet_readme.pt", "lenet_readme", "digits")
    image_run = tmp_path / "image_run"
    occamgan.train({"data": {"name": "digits", "image_size": 16}, "model": {"name": "dcgan", "ngf": 4, "ndf": 4, "latent_dim": 8},
                    "train": {"steps": 2, "batch_size": 16}, "eval": {"n_samples": 40}}, out=image_run, progress=False)
    return tmp_path, image_run


def test_the_readme_has_a_command_block():
    commands = readme_commands()
    assert len(commands) >= 10 and all(c[0] == "occamgan" for c in commands)


def test_every_readme_command_runs(workdir):
    _, image_run = workdir
    runner = CliRunner()
    for argv in readme_commands():
        args = cheap(argv, image_run)
        result = runner.invoke(app, args)
        assert result.exit_code == 0, f"occamgan {' '.join(args)}\n{result.output}"
    assert Path("runs/gp/report.html").is_file() and Path("samples/samples.png").is_file()
    assert Path("sweeps/x/ranking.md").is_file()
