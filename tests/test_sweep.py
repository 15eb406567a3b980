"""Sweeps: grid parsing, up-front validation, resumption after a kill, tables that agree with
results.csv."""
import csv
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from typer.testing import CliRunner

from occamgan.cli import app
from occamgan.commands import sweep as _registers  # noqa: F401
from occamgan.errors import ConfigError, RunDirError, TrainingError
from occamgan.sweep import parse_grid, run_sweep
from occamgan.train import callbacks as callbacks_mod

TIMING = {"seconds", "steps_per_second"}


@pytest.fixture
def base(tiny_overrides):
    return tiny_overrides + ["train.steps=30"]


def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def measured(rows):
    """The rows without wall-clock columns (which differ between identical runs)."""
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def test_parse_grid_reads_yaml_values():
    assert parse_grid("model.latent_dim=1,2,3,5").values == (1, 2, 3, 5)
    assert parse_grid("regularizers.sigma=0,0.05").values == (0, 0.05)
    assert parse_grid("objective.name=ns,wgan_div").values == ("ns", "wgan_div")
    axis = parse_grid("train.betas=[0.5,0.9],[0.0,0.99]")
    assert axis.key == "train.betas" and axis.values == ([0.5, 0.9], [0.0, 0.99])


@pytest.mark.parametrize("item", ["model.depth", "=1,2", "model.depth=", "model.depth=1,,2", "model.depth=1,1",
                                  "seed=1,2"])
def test_malformed_grid_is_a_config_error(item):
    with pytest.raises(ConfigError):
        parse_grid(item)


def test_table_is_mean_and_std_of_results_csv(tmp_path, base):
    result = run_sweep(None, ["model.depth=0,1", "regularizers.sigma=0,0.1"], seeds=2, out=tmp_path / "s",
                       jobs=1, overrides=base)
    rows = read_csv(result.results_path)
    assert len(rows) == 8 and all(r["status"] == "done" for r in rows)
    assert {(r["model.depth"], r["regularizers.sigma"], r["seed"]) for r in rows} == {
        (d, s, seed) for d in ("0", "1") for s in ("0", "0.1") for seed in ("0", "1")}
    assert {"mmd", "w2", "modes_covered", "final_loss_d", "final_loss_g", "step"} <= set(rows[0])

    lines = [l for l in result.table_path.read_text().splitlines() if l.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header[:3] == ["model.depth", "regularizers.sigma", "runs"]
    body = [[c.strip() for c in l.strip("|").split("|")] for l in lines[2:]]
    assert len(body) == 4
    checked = 0
    for cells in body:
        group = [r for r in rows if (r["model.depth"], r["regularizers.sigma"]) == (cells[0], cells[1])]
        assert cells[2] == "2/2"
        for column, cell in zip(header[3:], cells[3:]):
            values = np.array([float(r[column]) for r in group])
            # the table prints 4 significant digits of the mean, 2 of the sample std (ddof 1)
            assert cell == f"{values.mean():.4g} ± {values.std(ddof=1):.2g}", column
            checked += 1
    assert checked >= 4 * 6
    for column in header[3:]:
        assert (tmp_path / "s" / "plots" / f"{column}.png").stat().st_size > 1000


def test_interrupted_sweep_resumes_and_matches_an_uninterrupted_one(tmp_path, base, monkeypatch):
    grid, kw = ["model.depth=0,1"], dict(seeds=2, jobs=1, overrides=base + ["train.checkpoint_every=10"])
    reference = run_sweep(None, grid, out=tmp_path / "ref", plots=False, **kw)

    original = callbacks_mod.NaNGuard.__call__
    calls = {"n": 0}

    def killed_in_third_run(self, trainer, stats):
        calls["n"] += 1
        if calls["n"] == 2 * 30 + 25:  # third run, step 25: after its checkpoint at step 20
            raise KeyboardInterrupt
        original(self, trainer, stats)

    monkeypatch.setattr(callbacks_mod.NaNGuard, "__call__", killed_in_third_run)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(None, grid, out=tmp_path / "s", plots=False, **kw)
    monkeypatch.setattr(callbacks_mod.NaNGuard, "__call__", original)
    done = sorted(p.parent.name for p in (tmp_path / "s" / "runs").glob("*/summary.json"))
    assert len(done) == 2
    mtimes = {name: (tmp_path / "s" / "runs" / name / "summary.json").stat().st_mtime_ns for name in done}

    resumed = run_sweep(None, grid, out=tmp_path / "s", plots=False, **kw)
    assert resumed.counts == {"done": 2, "diverged": 0, "error": 0, "skipped": 2}
    for name, mtime in mtimes.items():
        assert (tmp_path / "s" / "runs" / name / "summary.json").stat().st_mtime_ns == mtime
    # the killed run resumed from its step-20 checkpoint: metrics.jsonl tells one story
    steps = [json.loads(l)["step"] for l in (tmp_path / "s" / "runs" / "model.depth=0__seed=1" / "metrics.jsonl")
             .read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 30
    assert measured(read_csv(resumed.results_path)) == measured(read_csv(reference.results_path))


def test_killed_parallel_sweep_skips_finished_runs_on_rerun(tmp_path, base):
    """SIGKILL the whole process group of a 2-process sweep once a run has finished."""
    out = tmp_path / "s"
    args = [sys.executable, "-m", "occamgan", "sweep", "--grid", "model.depth=0,1", "--seeds", "2", "--jobs", "2",
            "--out", str(out), "--no-plots"]
    overrides = [x for o in base + ["train.steps=100", "train.checkpoint_every=20"] for x in ("--set", o)]
    proc = subprocess.Popen(args + overrides, env=dict(os.environ, OMP_NUM_THREADS="1"), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    try:
        while not list(out.glob("runs/*/summary.json")) and proc.poll() is None and time.time() < deadline:
            time.sleep(0.1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finished = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("runs/*/summary.json")}
    assert finished, "no run finished before the deadline"
    result = run_sweep(None, ["model.depth=0,1"], seeds=2, out=out, jobs=1, overrides=base + [
        "train.steps=100", "train.checkpoint_every=20"], plots=False)
    assert result.counts["skipped"] == len(finished) and result.counts["done"] == 4 - len(finished)
    for name, mtime in finished.items():
        assert (out / "runs" / name / "summary.json").stat().st_mtime_ns == mtime
    assert all(r["status"] == "done" for r in read_csv(result.results_path))


def test_a_different_sweep_in_the_same_directory_is_refused(tmp_path, base):
    run_sweep(None, ["model.depth=0"], seeds=1, out=tmp_path / "s", jobs=1, overrides=base, plots=False)
    with pytest.raises(RunDirError, match="different sweep"):
        run_sweep(None, ["model.depth=1"], seeds=1, out=tmp_path / "s", jobs=1, overrides=base)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(RunDirError, match="not a sweep directory"):
        run_sweep(None, ["model.depth=0"], seeds=1, out=tmp_path / "other", jobs=1, overrides=base)


def test_a_sweep_saved_before_a_schema_key_was_added_still_resumes(tmp_path, base):
    first = run_sweep(None, ["model.depth=0"], seeds=1, out=tmp_path / "s", jobs=1, overrides=base, plots=False)
    plan_path = tmp_path / "s" / "sweep.json"
    plan = json.loads(plan_path.read_text())
    del plan["base"]["train"]["lr_decay"]  # as written by a version without the key
    plan_path.write_text(json.dumps(plan))
    again = run_sweep(None, ["model.depth=0"], seeds=1, out=tmp_path / "s", jobs=1, overrides=base, plots=False)
    assert again.counts["skipped"] == first.counts["done"] == 1
    # a key set to a non-default value is still a different sweep
    with pytest.raises(RunDirError, match="different sweep"):
        run_sweep(None, ["model.depth=0"], seeds=1, out=tmp_path / "s", jobs=1,
                  overrides=base + ["train.lr_decay=linear"], plots=False)


def test_diverged_run_is_a_result_and_not_retried(tmp_path, base, monkeypatch):
    def diverge(self, trainer, stats):
        if trainer.exp.cfg.model.depth == 1 and trainer.step == 5:
            raise TrainingError("loss_g is nan at step 5")

    monkeypatch.setattr(callbacks_mod.NaNGuard, "__call__", diverge)
    first = run_sweep(None, ["model.depth=0,1"], seeds=1, out=tmp_path / "s", jobs=1, overrides=base, plots=False)
    assert first.counts == {"done": 1, "diverged": 1, "error": 0, "skipped": 0}
    rows = {r["model.depth"]: r for r in read_csv(first.results_path)}
    assert rows["1"]["status"] == "diverged" and rows["1"]["mmd"] == "" and rows["0"]["mmd"] != ""
    assert "| 1 | 0/1 |" in first.table_path.read_text()
    again = run_sweep(None, ["model.depth=0,1"], seeds=1, out=tmp_path / "s", jobs=1, overrides=base, plots=False)
    assert again.counts["skipped"] == 2


def occamgan_cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "occamgan", *args], capture_output=True, text=True, cwd=cwd,
                          env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=300)


def test_bad_grid_value_fails_up_front_in_the_cli(tmp_path):
    """The second value is the bad one: still refused before the first run starts."""
    proc = occamgan_cli("sweep", "--grid", "model.depth=0,1", "--grid", "model.latent_dim=2,0", "--seeds", "2",
                        "--out", str(tmp_path / "s"), cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "config key model.latent_dim" in lines[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "s").exists() and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("args, fragment", [
    (["--grid", "model.bogus=1,2"], "unknown config key 'model.bogus'"),
    (["--grid", "objective.name=ns,wgandiv"], "allowed:"),
    (["--grid", "model.depth"], "expected KEY=V1,V2"),
    (["--grid", "model.depth=0,1", "--seeds", "0"], "--seeds"),
    (["--grid", "model.depth=0,1", "--jobs", "0"], "--jobs"),
])
def test_bad_sweep_arguments_are_one_line_errors(tmp_path, args, fragment):
    result = CliRunner().invoke(app, ["sweep", *args, "--out", str(tmp_path / "s")])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0]
    assert not (tmp_path / "s").exists()
