"""Every shipped config runs on a fresh machine: a few steps of each in an empty HOME and cache,
with its own model, objective and metrics (a domain classifier a metric needs is built on first
use). A config whose data are not on this machine ends at once with one line naming the data set
and where to put its files, and leaves no run directory behind."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

import occamgan.commands  # noqa: F401
from occamgan.cli import app
from occamgan.config import load_config

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").rglob("*.yaml"))
CHEAP = ["train.steps=2", "train.batch_size=8", "eval.n_samples=24", "eval.n_reference=24", "eval.every=0",
         "train.checkpoint_every=2", "eval.w2_samples=24", "eval.sharpness_batches=1", "eval.evidence_n=4",
         "eval.evidence_steps=4", "eval.evidence_chains=2"]


def needs_inception(path: Path) -> bool:
    """Metrics on the FID Inception network (fid, kid, pr, dc without a network suffix)."""
    return any("_" not in name and name in ("fid", "kid", "pr", "dc", "is") for name in load_config(path).eval.metrics)


def data_available(path: Path) -> bool:
    cfg = load_config(path)
    if cfg.data.name in ("gaussian", "ring8", "grid25", "swissroll", "digits", "ppca"):
        return True
    if cfg.data.name == "mnist":
        root = os.environ.get("OCCAMGAN_DATA")
        return bool(root) and (Path(root) / "mnist" / "train-images-idx3-ubyte.gz").is_file()
    return False


@pytest.fixture(scope="module")
def fresh_home(tmp_path_factory):
    """One empty HOME for the module, so a classifier built for one MNIST config serves the next."""
    return tmp_path_factory.mktemp("home")


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(ROOT / "configs")))
def test_shipped_config_runs_or_names_its_missing_data(path, fresh_home, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(fresh_home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(fresh_home / ".cache"))
    out = tmp_path / "run"
    args = ["train", "--config", str(path), "--out", str(out), "--no-progress"]
    for item in CHEAP:
        args += ["--set", item]
    # offline: nothing is fetched (the Inception file would be, from PyPI); MNIST comes from OCCAMGAN_DATA
    monkeypatch.setenv("OCCAMGAN_OFFLINE", "1")
    args += ["--set", "data.download=false"]
    result = CliRunner().invoke(app, args)
    if data_available(path) and needs_inception(path):  # checked before training: one line, no run
        assert result.exit_code == 2, result.output
        assert result.output.count("\n") == 1 and "FID Inception network not found" in result.output
        assert not out.exists()
    elif data_available(path):
        assert result.exit_code == 0, result.output
        assert (out / "summary.json").is_file() and (out / "report.html").is_file()
    else:
        assert result.exit_code == 2, result.output
        lines = [line for line in result.output.splitlines() if line.startswith("error")]
        assert len(lines) == 1 and load_config(path).data.name.split("_")[0] in lines[0], result.output
        assert not out.exists()


def test_every_shipped_config_is_covered():
    assert len(CONFIGS) >= 15
