"""The evidence of trained runs: occamgan.evidence / occamgan.bdmc on runs and modules, the
`occamgan evidence` command, the `evidence` metric in eval.metrics, model selection over a sweep,
and the degenerate-model warning (Filippone & Linhard, Thm 4.2)."""
from __future__ import annotations

import json
import logging
import math

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import occamgan
import occamgan.commands  # noqa: F401  (registers the commands)
from occamgan.cli import app
from occamgan.config import build_config
from occamgan.model_evidence import held_out_data, warn_if_degenerate
from occamgan.sweep import RANKING_CSV, RANKING_MD, run_sweep, select

TINY = ["data.name=gaussian", "objective.name=mmd", "model.depth=1", "model.width=8", "model.latent_dim=2",
        "train.steps=30", "train.batch_size=50", "eval.n_samples=200", "train.checkpoint_every=30"]
FAST = dict(chains=4, steps=30, leapfrog=3)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("ev") / "run"
    occamgan.train(overrides=TINY + ["regularizers.sigma=0.3"], out=out, progress=False)
    return out


def linear_pca_logpdf(w: torch.Tensor, b: torch.Tensor, sigma: float, x: torch.Tensor) -> torch.Tensor:
    cov = w @ w.T + sigma**2 * torch.eye(len(b), dtype=torch.float64)
    return torch.distributions.MultivariateNormal(b, covariance_matrix=cov).log_prob(x)


def test_evidence_of_a_module_matches_probabilistic_pca():
    torch.manual_seed(0)
    gen = nn.Linear(2, 3).double()
    x = gen(torch.randn(20, 2, dtype=torch.float64)).detach() + 0.4 * torch.randn(20, 3, dtype=torch.float64)
    exact = linear_pca_logpdf(gen.weight.detach(), gen.bias.detach(), 0.4, x)
    res = occamgan.evidence(gen, x, sigma=0.4, latent_dim=2, chains=8, steps=200, leapfrog=5, seed=1,
                            schedule="geometric", target_acceptance=0.9)
    assert res.log_px.dtype == torch.float64 and res.log_px.shape == (20,)
    assert abs(res.mean - exact.mean().item()) < 0.05
    assert (res.log_px - exact).abs().max() < 0.5
    assert res.protocol["sigma"] == 0.4 and res.method == "ais" and res.stderr > 0
    with pytest.raises(ValueError, match="latent_dim"):
        occamgan.evidence(gen, x, sigma=0.4)


def test_a_run_directory_and_its_loaded_run_give_the_same_evidence(run_dir):
    cfg = occamgan.load_run(run_dir).config
    x = held_out_data(cfg, "test", 10)
    a = occamgan.evidence(run_dir, x, sigma=0.3, seed=3, **FAST)
    b = occamgan.evidence(occamgan.load_run(run_dir), x, sigma=0.3, seed=3, **FAST)
    raw = occamgan.evidence(run_dir, x, sigma=0.3, seed=3, use_ema=False, **FAST)
    assert torch.equal(a.log_px, b.log_px) and not torch.equal(a.log_px, raw.log_px)
    bounds = occamgan.bdmc(run_dir, 8, sigma=0.3, seed=0, **FAST)
    assert bounds.lower_mean <= bounds.upper_mean + 0.5


def test_held_out_toy_data_is_a_fresh_seeded_draw():
    cfg = build_config({"data": {"name": "ring8", "n_samples": 500}})
    test, again, val = (held_out_data(cfg, s, 100) for s in ("test", "test", "validation"))
    assert torch.equal(test, again) and not torch.equal(test, val) and test.shape == (100, 2)
    from occamgan.data.base import build_data

    assert not any(torch.equal(row, t) for row in build_data(cfg).data[:100] for t in test[:5])


def test_command_prints_then_records_with_its_protocol(run_dir):
    result = CliRunner().invoke(app, ["evidence", str(run_dir), "--n", "10", "--chains", "4", "--steps", "20",
                                      "--leapfrog", "3", "--bdmc", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "log p(x) =" in result.output and "BDMC" in result.output
    record = json.loads((run_dir / "summary.json").read_text())["evidence"]
    assert record["method"] == "ais" and record["sigma"] == 0.3 and record["n"] == 10 and record["split"] == "test"
    assert record["protocol"]["steps"] == 20 and record["protocol"]["chains"] == 4
    assert "bits_per_dim" not in record  # toy data
    assert math.isfinite(record["mean"]) and record["bdmc"]["gap_mean"] >= -1.0


def test_fit_sigma_plots_its_curve_into_the_run(run_dir):
    result = CliRunner().invoke(app, ["evidence", str(run_dir), "--fit-sigma", "--method", "is", "--n", "20",
                                      "--chains", "64"])
    assert result.exit_code == 0, result.output
    assert (run_dir / "evidence_sigma.png").is_file()
    record = json.loads((run_dir / "summary.json").read_text())["evidence"]
    curve = record["sigma_fit"]["curve"]
    best_sigma = max(curve, key=lambda point: point[1])[0]  # the validation curve's maximum
    assert len(curve) >= 3 and best_sigma == pytest.approx(record["sigma"], rel=1e-12)


@pytest.mark.parametrize("args, message", [
    (["--sigma", "0.1", "--fit-sigma"], "exclude each other"),
    (["--method", "mcmc"], "--method must be"),
    (["--split", "dev"], "--split must be"),
])
def test_bad_options_are_one_line_errors(run_dir, args, message):
    result = CliRunner().invoke(app, ["evidence", str(run_dir), "--no-record", *args])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_a_run_without_relaxation_needs_a_sigma(tmp_path):
    occamgan.train(overrides=TINY, out=tmp_path / "r", progress=False)
    result = CliRunner().invoke(app, ["evidence", str(tmp_path / "r")])
    assert result.exit_code == 2 and "--sigma S or --fit-sigma" in result.output


def test_evidence_is_a_metric_of_training_and_of_sweeps(tmp_path):
    extra = ["eval.metrics=[evidence]", "eval.evidence_sigma=0.5", "eval.evidence_n=20", "eval.evidence_chains=4",
             "eval.evidence_steps=20", "eval.evidence_leapfrog=2"]
    sweep = run_sweep(None, ["model.latent_dim=1,2"], seeds=1, out=tmp_path / "s", jobs=1, overrides=TINY + extra,
                      plots=False)
    assert all(math.isfinite(r["evidence"]) for r in sweep.rows)
    chosen = select(tmp_path / "s", "evidence", plots=True)
    values = [r["evidence"] for r in chosen.runs]
    assert values == sorted(values, reverse=True) and chosen.best["mean"] == max(values)
    assert (tmp_path / "s" / RANKING_MD).is_file() and (tmp_path / "s" / RANKING_CSV).is_file()
    assert (tmp_path / "s" / "plots" / "select_evidence_vs_model_latent_dim.png").is_file()
    summary = json.loads(next((tmp_path / "s" / "runs").glob("*/summary.json")).read_text())
    assert summary["metrics"]["protocol_evidence"]["sigma"] == "given"


def test_degenerate_model_warns_once(caplog):
    cfg = build_config({"model": {"latent_dim": 1}, "data": {"name": "grid25"}})
    with caplog.at_level(logging.WARNING, logger="occamgan"):
        warn_if_degenerate(cfg, 3)
        warn_if_degenerate(cfg, 3)
        warn_if_degenerate(build_config({"model": {"latent_dim": 3}}), 3)  # P >= D
        warn_if_degenerate(build_config({"model": {"latent_dim": 1}, "regularizers": {"sigma": 0.1}}), 4)  # sigma > 0
    warnings = [r for r in caplog.records if "Thm 4.2" in r.getMessage()]
    assert len(warnings) == 1
