"""The command line as a user runs it: a subprocess per call."""
import json
import os
import subprocess
import sys

import pytest

TINY = ["--set", "train.steps=20", "--set", "train.batch_size=32", "--set", "model.width=16",
        "--set", "data.n_samples=256", "--set", "eval.n_samples=256", "--set", "eval.w2_samples=128"]


def occamgan(*args, cwd=None):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "occamgan", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


def test_train_writes_a_complete_run_directory(tmp_path):
    out = tmp_path / "run"
    proc = occamgan("train", *TINY, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    for name in ["config.yaml", "metrics.jsonl", "checkpoints/last.pt", "samples.png", "summary.json"]:
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    assert {"modes_covered", "hq_fraction", "mmd", "w2"} <= set(summary["metrics"])
    assert "plot:" in proc.stdout and str(out / "samples.png") in proc.stdout.replace("\n", "")
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["step"] == 20 and {"loss_d", "loss_g", "lr_g"} <= set(records[-1])
    # the final scores share the last training record (one record per step)
    assert records[-1]["eval/hq_fraction"] == summary["metrics"]["hq_fraction"]
    assert [r["step"] for r in records] == sorted({r["step"] for r in records})


def test_gaussian_run_reports_chi2_score(tmp_path):
    proc = occamgan("train", *TINY, "--set", "data.name=gaussian", "--set", "objective.name=mmd",
                    "--out", str(tmp_path / "g"))
    assert proc.returncode == 0, proc.stderr
    assert "chi2_score" in json.loads((tmp_path / "g" / "summary.json").read_text())["metrics"]


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--set", "train.lr_g=-1"], "train.lr_g"),
        (["--set", "train.bogus=1"], "train.bogus"),
        (["--set", "objective.name=wgangp"], "allowed:"),
        (["--config", "missing.yaml"], "missing.yaml"),
        (["--set", "train.batch_size=zero"], "train.batch_size"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_creates_nothing(tmp_path, args, fragment):
    out = tmp_path / "never"
    proc = occamgan("train", *args, "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0] and "Traceback" not in proc.stderr
    assert not out.exists() and not (tmp_path / "runs").exists()


def test_unparsable_config_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {steps: [1,\n")
    proc = occamgan("train", "--config", str(bad), "--out", str(tmp_path / "r"))
    assert proc.returncode == 2 and "bad.yaml" in proc.stderr and "Traceback" not in proc.stderr


def test_existing_run_is_not_overwritten_and_resume_continues(tmp_path):
    out = tmp_path / "run"
    assert occamgan("train", *TINY, "--out", str(out)).returncode == 0
    before = (out / "checkpoints" / "last.pt").read_bytes()
    proc = occamgan("train", *TINY, "--out", str(out))
    assert proc.returncode == 2 and "--resume" in proc.stderr
    assert (out / "checkpoints" / "last.pt").read_bytes() == before
    proc = occamgan("train", "--out", str(out), "--resume", "--set", "train.steps=30")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "summary.json").read_text())["step"] == 30


def test_corrupt_checkpoint_is_one_line_error(tmp_path):
    out = tmp_path / "run"
    assert occamgan("train", *TINY, "--out", str(out)).returncode == 0
    (out / "checkpoints" / "last.pt").write_bytes(b"garbage")
    proc = occamgan("train", "--out", str(out), "--resume", "--set", "train.steps=30")
    assert proc.returncode == 2 and "last.pt" in proc.stderr and "Traceback" not in proc.stderr


def test_help_is_complete():
    proc = occamgan("--help")
    assert proc.returncode == 0 and "train" in proc.stdout
    for command in ["train", "config"]:
        sub = occamgan(command, "--help")
        assert sub.returncode == 0 and "--set" in sub.stdout
