"""Sharpness of trained runs: the end-of-run metric (eval.sharpness) and `occamgan sharpness`."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import occamgan
from occamgan.cli import app
from occamgan.commands import sharpness as _registers_command  # noqa: F401
from occamgan.evaluation import evaluate_run


def sharpness_of_run(run_dir, use_ema=None, k=None, n_batches=None, reduce=None):
    """The `sharpness` metric of a run directory, its knobs overridden, nothing recorded."""
    params = {"sharpness_k": k, "sharpness_batches": n_batches, "sharpness_reduce": reduce}
    return evaluate_run(run_dir, ["sharpness"], use_ema=use_ema, params=params, record=False)


@pytest.fixture(scope="module")
def mmd_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "gauss"
    overrides = ["data.name=gaussian", "objective.name=mmd", "model.depth=1", "model.width=8",
                 "model.latent_dim=1", "train.steps=20", "train.batch_size=50", "eval.n_samples=500",
                 "eval.sharpness=true", "eval.sharpness_k=2", "eval.sharpness_batches=2",
                 "train.checkpoint_every=20", "train.ema_decay=0.9"]
    return occamgan.train(None, overrides=overrides, out=out, progress=False)


def test_end_of_run_metric_is_in_the_summary_and_reproducible(mmd_run):
    metrics = mmd_run.metrics
    assert metrics["top_eigenvalue"] == metrics["top_eigenvalues"][0]
    assert metrics["top_eigenvalues"][0] >= metrics["top_eigenvalues"][1]
    # MMD^2 is measured at a trained (near-)minimum of a smooth loss: positive curvature
    assert metrics["top_eigenvalue"] > 0
    # the restored run measures the same value (EMA generator, same seeded batches)
    again = sharpness_of_run(mmd_run.run_dir)
    assert again["top_eigenvalues"] == pytest.approx(metrics["top_eigenvalues"], rel=1e-6)
    raw = sharpness_of_run(mmd_run.run_dir, use_ema=False)
    assert raw["top_eigenvalue"] != pytest.approx(metrics["top_eigenvalue"], rel=1e-6)


def test_command_prints_and_records(mmd_run):
    runner = CliRunner()
    result = runner.invoke(app, ["sharpness", str(mmd_run.run_dir), "-k", "3", "--batches", "1"])
    assert result.exit_code == 0, result.output
    lines = dict(line.split(None, 1) for line in result.output.strip().splitlines())
    values = [float(v) for v in lines["top_eigenvalues"].split(",")]
    assert len(values) == 3 and values == sorted(values, reverse=True)
    assert float(lines["top_eigenvalue"]) == pytest.approx(values[0], rel=1e-5)
    summary = json.loads((mmd_run.run_dir / "summary.json").read_text())
    assert summary["metrics"]["top_eigenvalues"] == pytest.approx(values, rel=1e-5)
    last = json.loads((mmd_run.run_dir / "metrics.jsonl").read_text().strip().splitlines()[-1])
    assert last["eval/top_eigenvalue"] == pytest.approx(values[0], rel=1e-5)


@pytest.mark.parametrize("args, message", [
    (["--player", "d"], "has no discriminator"),
    (["--player", "x"], "--player must be"),
    (["-k", "100000"], "exceeds"),
    (["--reduce", "max"], "--reduce must be"),
    (["--method", "largest"], "--method must be one of"),
])
def test_user_errors_are_one_line(mmd_run, args, message):
    result = CliRunner().invoke(app, ["sharpness", str(mmd_run.run_dir), "--no-record", *args])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_not_a_run_directory(tmp_path):
    result = CliRunner().invoke(app, ["sharpness", str(tmp_path)])
    assert result.exit_code == 2 and "not a run directory" in result.output


def test_reduce_over_batches(mmd_run):
    per_batch = sharpness_of_run(mmd_run.run_dir, k=1, n_batches=2)
    mean_hessian = sharpness_of_run(mmd_run.run_dir, k=1, n_batches=2, reduce="hessian")
    assert 0 < mean_hessian["top_eigenvalue"] <= per_batch["top_eigenvalue"] + 1e-9
    result = CliRunner().invoke(app, ["sharpness", str(mmd_run.run_dir), "--no-record", "-k", "1",
                                      "--batches", "2", "--reduce", "hessian"])
    assert result.exit_code == 0, result.output
    assert float(result.output.split()[1]) == pytest.approx(mean_hessian["top_eigenvalue"], rel=1e-5)


def test_the_authors_protocol_and_the_bottom_beside_ours(mmd_run):
    """--method power_abs (largest |eigenvalue| by power iteration on one batch) and smallest
    (bottom_eigenvalue), next to lanczos_top, each under its own key, through the metric's knobs."""
    result = CliRunner().invoke(app, ["sharpness", str(mmd_run.run_dir), "--no-record", "-k", "1", "--batches", "1",
                                      "--raw", "--method", "lanczos_top", "--method", "power_abs",
                                      "--method", "smallest", "--power-iters", "2000", "--power-tol", "1e-7",
                                      "--power-batch", "seeded"])
    assert result.exit_code == 0, result.output
    lines = dict(line.split(None, 1) for line in result.output.strip().splitlines())
    top, absolute, bottom = (float(lines[k]) for k in ("top_eigenvalue", "top_abs_eigenvalue", "bottom_eigenvalue"))
    assert bottom <= top
    # one batch: all three measure the same Hessian, whose largest magnitude is one of its ends
    # (float32 Hessian-vector products: a relative tolerance of 1e-7 is about the floor)
    assert float(lines["top_abs_converged"]) == 1.0 and float(lines["top_abs_iterations"]) < 2000
    assert absolute == pytest.approx(top if abs(top) >= abs(bottom) else bottom, rel=1e-4)
    same = evaluate_run(mmd_run.run_dir, ["sharpness"], use_ema=False, record=False,
                        params={"sharpness_methods": ["power_abs"], "sharpness_power_iters": 2000,
                                "sharpness_power_tol": 1e-7, "sharpness_batches": 1,
                                "sharpness_power_batch": "seeded"})
    assert same["top_abs_eigenvalue"] == pytest.approx(absolute, rel=1e-5)
    assert set(same) == {"top_abs_eigenvalue", "top_abs_converged", "top_abs_iterations", "protocol_sharpness"}
    protocol = same["protocol_sharpness"]
    assert protocol["power_abs"]["iters"] == 2000 and "first seeded batch" in protocol["power_abs"]["batch"]
    # the authors' defaults: 20 products, relative tolerance 1e-4
    default = evaluate_run(mmd_run.run_dir, ["sharpness"], use_ema=False, record=False,
                           params={"sharpness_methods": ["power_abs"]})
    assert default["top_abs_iterations"] <= 20
    assert default["protocol_sharpness"]["power_abs"]["tol"] == 1e-4


def test_power_iteration_on_the_exact_last_training_batch(mmd_run):
    """A restored run rebuilds its last training batch from the checkpoint's sampler state, and
    power_abs measures exactly that batch (the authors' protocol), as the end of training does."""
    import torch

    from occamgan.diagnostics.hessian import batch_eigenvalues, last_training_batch
    from occamgan.evaluation import run_metrics, trained_context
    from occamgan.metrics.sharpness import SHARPNESS_SEED_OFFSET
    from occamgan.runs import load_run
    from occamgan.train.checkpoint import load_checkpoint

    run = load_run(mmd_run.run_dir)
    state = load_checkpoint(run.files.checkpoint_path)["sampler"]
    last = last_training_batch(run.data.data, state, run.config.train.batch_size)
    ctx = trained_context(run, use_ema=False, params={"sharpness_methods": ["power_abs"]})
    assert torch.equal(ctx.last_training_batch(), last)
    got = run_metrics(["sharpness"], ctx)
    seed = run.config.seed + SHARPNESS_SEED_OFFSET
    expected = batch_eigenvalues(run.game, [last], "power_abs", seed=seed, generator=run.game.generator)
    assert got["top_abs_eigenvalue"] == pytest.approx(expected[0], rel=1e-12)
    assert got["protocol_sharpness"]["power_abs"]["batch"] == "the run's last training batch"
    assert isinstance(last, torch.Tensor) and last.shape == (50, 2)
    # the seeded stand-in is another batch, hence (here) another value
    seeded = run_metrics(["sharpness"], trained_context(run, use_ema=False, params={
        "sharpness_methods": ["power_abs"], "sharpness_power_batch": "seeded"}))
    assert "first seeded batch" in seeded["protocol_sharpness"]["power_abs"]["batch"]
    assert seeded["top_abs_eigenvalue"] != pytest.approx(got["top_abs_eigenvalue"], rel=1e-6)


def test_the_end_of_training_sees_the_last_training_batch(tmp_path):
    """The final summary's power_abs uses the batch the trainer handed out last."""
    import torch

    from occamgan.data.base import BatchSampler

    handed = []
    original = BatchSampler.next

    def recording(self):
        batch = original(self)
        handed.append(batch.clone())
        return batch

    overrides = ["data.name=gaussian", "objective.name=mmd", "model.depth=1", "model.width=8", "model.latent_dim=1",
                 "train.steps=7", "train.batch_size=50", "eval.n_samples=200", "eval.metrics=[sharpness]",
                 "eval.sharpness_methods=[power_abs]", "train.report=false"]
    import unittest.mock

    with unittest.mock.patch.object(BatchSampler, "next", recording):
        result = occamgan.train(None, overrides=overrides, out=tmp_path / "r", progress=False)
    assert result.metrics["protocol_sharpness"]["power_abs"]["batch"] == "the run's last training batch"
    again = evaluate_run(tmp_path / "r", ["sharpness"], record=False, params={"sharpness_methods": ["power_abs"]})
    assert again["top_abs_eigenvalue"] == pytest.approx(result.metrics["top_abs_eigenvalue"], rel=1e-6)
    assert len(handed) == 7
    from occamgan.diagnostics.hessian import last_training_batch
    from occamgan.runs import load_run
    from occamgan.train.checkpoint import load_checkpoint

    run = load_run(tmp_path / "r")
    state = load_checkpoint(run.files.checkpoint_path)["sampler"]
    assert torch.equal(last_training_batch(run.data.data, state, 50), handed[-1])
