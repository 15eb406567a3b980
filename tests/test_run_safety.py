"""What a run directory guarantees: a refused --resume changes nothing; changed optimiser
settings take effect on --resume (and config.yaml says so); the NaN guard's advice works when
followed; one writer per run (a second exits 2 naming the holder); Ctrl-C and SIGTERM write a
checkpoint and exit 130/143 with one line saying how to resume."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import occamgan
from occamgan.errors import CheckpointError, TrainingError
from occamgan.train.checkpoint import load_checkpoint


def files_of(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


def test_a_refused_resume_changes_nothing(tmp_path, tiny_overrides):
    run = tmp_path / "r"
    occamgan.train(overrides=tiny_overrides, out=run, progress=False)
    before = files_of(run)
    with pytest.raises(CheckpointError, match="different game: objective"):
        occamgan.train({"objective": {"name": "hinge"}}, overrides=tiny_overrides, out=run, resume=True, progress=False)
    with pytest.raises(CheckpointError, match="different game: model"):
        occamgan.train(out=run, resume=True, overrides=["model.width=4"], progress=False)
    assert files_of(run) == before
    occamgan.sample(run, 8)  # the run is still usable as it was
    occamgan.train(out=run, resume=True, overrides=["train.steps=25"], progress=False)


def lr_log(run: Path) -> dict[int, float]:
    return {r["step"]: r["lr_g"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
            if "lr_g" in r}


@pytest.mark.parametrize("rule", ["alternating", "simultaneous"])
def test_changed_optimiser_settings_take_effect_on_resume(tmp_path, tiny_overrides, rule):
    run = tmp_path / rule
    base = tiny_overrides + [f"train.update={rule}", "train.lr_decay=none", "train.log_every=1"]
    occamgan.train(overrides=base, out=run, progress=False)
    occamgan.train(out=run, resume=True, progress=False,
                   overrides=["train.steps=30", "train.lr_g=2e-4", "train.lr_d=3e-4", "train.betas=[0.0,0.9]"])
    lrs = lr_log(run)
    assert lrs[20] == pytest.approx(1e-3) and lrs[21] == pytest.approx(2e-4) and lrs[30] == pytest.approx(2e-4)
    state = load_checkpoint(run / "checkpoints" / "last.pt")["rule"]
    groups = state["opt_g"]["param_groups"] + state["opt_d"]["param_groups"]
    assert {tuple(g["betas"]) for g in groups} == {(0.0, 0.9)}
    assert state["opt_d"]["param_groups"][0]["lr"] == pytest.approx(3e-4)
    cfg = occamgan.load_run(run).config  # config.yaml records what ran
    assert cfg.train.lr_g == 2e-4 and cfg.train.betas == (0.0, 0.9) and cfg.train.steps == 30


def test_following_the_nan_guards_advice_finishes_the_run(tmp_path, tiny_overrides):
    run = tmp_path / "r"
    occamgan.train(overrides=tiny_overrides + ["train.lr_decay=none", "train.steps=10"], out=run, progress=False)
    with pytest.raises(TrainingError) as stop:  # a learning rate that diverges at once
        occamgan.train(out=run, resume=True, overrides=["train.lr_g=1e30", "train.lr_d=1e30", "train.steps=40"],
                       progress=False)
    message = str(stop.value)
    assert "last good checkpoint is" in message and str(run / "checkpoints" / "last.pt") in message
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 10  # nothing bad was saved
    result = occamgan.train(out=run, resume=True, overrides=["train.lr_g=1e-3", "train.lr_d=1e-3"], progress=False)
    assert result.summary["step"] == 40
    assert all(torch.isfinite(v).all() for v in load_checkpoint(run / "checkpoints" / "last.pt")["generator"].values())


def test_the_nan_message_names_no_checkpoint_when_there_is_none(tmp_path, tiny_overrides):
    with pytest.raises(TrainingError) as stop:
        occamgan.train(overrides=tiny_overrides + ["train.lr_g=1e30", "train.lr_d=1e30", "train.checkpoint_every=1000"],
                       out=tmp_path / "r", progress=False)
    assert "no checkpoint was written yet" in str(stop.value) and "last.pt" not in str(stop.value)
    # a run that never reached a checkpoint starts again with the same command (no --overwrite)
    occamgan.train(overrides=tiny_overrides, out=tmp_path / "r", progress=False)


# ------------------------------------------------------------------ processes
CLI = [sys.executable, "-m", "occamgan", "train", "--no-progress", "--set", "train.batch_size=32",
       "--set", "model.width=16", "--set", "model.depth=1", "--set", "data.n_samples=256",
       "--set", "eval.n_samples=256", "--set", "eval.w2_samples=128", "--set", "train.log_every=10"]


def start(out: Path, steps: int, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([*CLI, "--set", f"train.steps={steps}", "--set", "train.checkpoint_every=1000000",
                             *extra, "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.poll() is None:
        if path.is_file() and path.stat().st_size > 0:
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} did not appear ({proc.poll()})")


def training_started(run: Path, proc: subprocess.Popen) -> None:
    """Wait until the run has logged a training step (so the signal lands inside the loop)."""
    wait_for(run / "metrics.jsonl", proc)


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_writes_a_checkpoint_and_says_how_to_resume(tmp_path, signum, code):
    run = tmp_path / "r"
    proc = start(run, 10**6)
    training_started(run, proc)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and "checkpoint written" in lines[0] and "--resume" in lines[0], err
    assert "Traceback" not in err
    step = load_checkpoint(run / "checkpoints" / "last.pt")["step"]
    assert step >= 10 and f"at step {step}" in lines[0]
    target = step + 5
    occamgan.train(out=run, resume=True, overrides=[f"train.steps={target}"], progress=False)
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == target


def test_one_writer_per_run_directory(tmp_path):
    run = tmp_path / "r"
    first = start(run, 10**6)
    try:
        training_started(run, first)
        second = subprocess.run([*CLI, "--set", "train.steps=5", "--out", str(run), "--overwrite"],
                                capture_output=True, text=True, timeout=120)
        assert second.returncode == 2
        assert f"in use by process {first.pid}" in second.stderr and len(second.stderr.strip().splitlines()) == 1
        assert first.poll() is None  # the first one was not disturbed
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=60)
