"""`occamgan eval RUN_DIR` and eval.metrics during training, on a tiny digits DCGAN run (offline)."""
from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from occamgan import api
from occamgan.cli import app
from occamgan.commands import eval as _registers  # noqa: F401
from occamgan.config import build_config
from occamgan.data.base import build_data
from occamgan.metrics.domain_classifier import save_classifier, train_classifier

RUN_CFG = {
    "data": {"name": "digits", "image_size": 16},
    "model": {"name": "dcgan", "latent_dim": 8, "ngf": 4, "ndf": 4},
    "objective": {"name": "rgan"},
    "train": {"steps": 6, "batch_size": 16, "device": "cpu", "log_every": 2},
    "eval": {"n_samples": 64, "n_reference": 128, "metrics": ["fid_lenet", "pr_lenet"], "every": 3},
}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A digits classifier saved as both ``lenet`` and ``lenet_digits`` in a private cache."""
    split = {s: build_data(build_config({"data": {"name": "digits", "split": s}})) for s in ("train", "test")}
    trained = train_classifier(split["train"].data, split["train"].labels, split["test"].data,
                               split["test"].labels, epochs=2, batch_size=32)
    root = tmp_path_factory.mktemp("cache")
    path = save_classifier(trained, root / "occamgan" / "features" / "lenet.pt", "lenet", "digits")
    shutil.copy(path, path.with_name("lenet_digits.pt"))
    return root


@pytest.fixture(scope="module")
def run_dir(cache, tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(cache))
        return api.train(RUN_CFG, out=tmp_path_factory.mktemp("run"), overwrite=True, progress=False).run_dir


def invoke(cache, monkeypatch, *args):
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    return CliRunner().invoke(app, ["eval", *map(str, args)])


def test_training_evaluates_configured_metrics(run_dir):
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    periodic = [r for r in records if "eval/fid_lenet" in r]
    # eval.every = 3, and the final evaluation merged into the last step's record
    assert [r["step"] for r in periodic] == [3, 6]
    assert records[-1]["eval/fid_lenet"] == json.loads((run_dir / "summary.json").read_text())["metrics"]["fid_lenet"]
    assert {"eval/precision_lenet", "eval/recall_lenet"} <= set(periodic[0])
    summary = json.loads((run_dir / "summary.json").read_text())
    proto = summary["metrics"]["protocol_lenet"]
    assert summary["metrics"]["fid_lenet"] > 0
    assert proto["n_fake"] == 64 and proto["n_real"] == 128 and proto["generator"] == "ema"
    assert proto["reference"]["split"] == "train" and proto["features"]["trained_on"] == "digits"


def test_eval_command_records_values_with_protocol(run_dir, cache, monkeypatch):
    result = invoke(cache, monkeypatch, run_dir, "--metrics", "fid,kid,dc", "--features", "lenet_digits",
                    "--n", 48, "--n-ref", 100, "--raw")
    assert result.exit_code == 0, result.output
    assert "fid_lenet_digits" in result.output and "kid_std_lenet_digits" in result.output
    assert "raw generator, 48 generated vs 100 digits/train images" in result.output
    last = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["step"] == 6 and last["eval/protocol_lenet_digits"]["generator"] == "raw"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["metrics"]["density_lenet_digits"] == pytest.approx(last["eval/density_lenet_digits"])
    assert "fid_lenet" in summary["metrics"]  # earlier values are kept


def test_eval_against_the_test_split(run_dir, cache, monkeypatch):
    result = invoke(cache, monkeypatch, run_dir, "--metrics", "fid", "--features", "lenet", "--n", 32,
                    "--ref-split", "test", "--no-record")
    assert result.exit_code == 0, result.output
    assert "32 generated vs 128 digits/test images" in result.output  # eval.n_reference of the run


def test_unknown_features_is_a_one_line_error(run_dir, cache, monkeypatch):
    result = invoke(cache, monkeypatch, run_dir, "--features", "resnet", "--n", 8)
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "unknown feature network 'resnet'" in result.output
    result = invoke(cache, monkeypatch, run_dir, "--metrics", "fid,iz", "--features", "lenet")
    assert result.exit_code == 2 and "unknown image metric 'iz_lenet'" in result.output
    result = invoke(cache, monkeypatch, run_dir, "--metrics", "is", "--n", 8)  # a metric whose network is absent
    assert result.exit_code == 2 and result.output.count("\n") == 1 and "Inception logits network" in result.output
