"""Fault injection across the commands: each bad input or fault in the table ends with exit code 2,
exactly one line on stderr that names the culprit, no traceback, and every file that existed
before unchanged (no run directory created where none was). The data-file faults live in
test_data_faults.py, signals and concurrency in tests/test_run_safety.py."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import occamgan
import occamgan.commands  # noqa: F401  (registers the commands)
import occamgan.sweep
from occamgan.cli import app

TINY = ["--set", "train.steps=4", "--set", "train.batch_size=16", "--set", "model.width=8", "--set", "model.depth=1",
        "--set", "data.n_samples=64", "--set", "eval.n_samples=32", "--set", "eval.w2_samples=16",
        "--set", "train.checkpoint_every=2"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A place with a finished toy run, a finished tiny sweep, a file, a user's folder and bad files."""
    root = tmp_path_factory.mktemp("faults")
    occamgan.train(overrides=[a for a in TINY if a != "--set"], out=root / "run", progress=False)
    occamgan.sweep.run_sweep(None, ["model.latent_dim=1,2"], seeds=1, out=root / "sweep", jobs=1,
                             overrides=[a for a in TINY if a != "--set"], plots=False)
    (root / "file.txt").write_text("a user's file")
    (root / "mine").mkdir()
    (root / "mine" / "thesis.txt").write_text("four years of work")
    (root / "bad.yaml").write_text("train: [unclosed\n")
    (root / "list.yaml").write_text("- a\n- b\n")
    (root / "binary.yaml").write_bytes(b"\xff\xfe\x00bad")
    (root / "unknown.yaml").write_text("trian:\n  steps: 3\n")
    (root / "misapplied.yaml").write_text("objective:\n  name: wgan_div\n  gp_weight: 5\n")
    (root / "inf.yaml").write_text("train:\n  lr_g: .inf\n")
    runs = {}
    for name, damage in {"textckpt": b"not a checkpoint", "empty": b"", "zip": b"PK\x03\x04garbage"}.items():
        run = root / f"run_{name}"
        subprocess.run(["cp", "-r", str(root / "run"), str(run)], check=True)
        (run / "checkpoints" / "last.pt").write_bytes(damage)
        runs[name] = run
    foreign = root / "run_foreign"
    subprocess.run(["cp", "-r", str(root / "run"), str(foreign)], check=True)
    torch.save({"format": 1, "weights": torch.zeros(2)}, foreign / "checkpoints" / "last.pt")
    broken = root / "run_badyaml"
    subprocess.run(["cp", "-r", str(root / "run"), str(broken)], check=True)
    (broken / "config.yaml").write_text("model: {name: [\n")
    badsummary = root / "sweep_badjson"
    subprocess.run(["cp", "-r", str(root / "sweep"), str(badsummary)], check=True)
    (badsummary / "sweep.json").write_text("{not json")
    return root


R = "{root}"
# (id, argv with {root}, a fragment the one line must contain (the culprit))
CASES = [
    # config: keys, values, names, files
    ("unknown key", ["train", "--set", "train.stepz=3"], "train.stepz"),
    ("unknown section", ["train", "--set", "nonsense.x=1"], "nonsense"),
    ("wrong type", ["train", "--set", "train.steps=many"], "train.steps"),
    ("negative", ["train", "--set", "train.batch_size=-4"], "train.batch_size"),
    ("infinite lr", ["train", "--set", "train.lr_g=inf"], "train.lr_g"),
    ("infinite data std", ["train", "--set", "data.std=inf"], "data.std"),
    ("nan", ["train", "--set", "train.lr_d=nan"], "train.lr_d"),
    ("unknown objective", ["train", "--set", "objective.name=wgn"], "wgn"),
    ("unknown generator loss", ["train", "--set", "objective.generator_loss=nss"], "nss"),
    ("unknown rule", ["train", "--set", "train.update=adam"], "adam"),
    ("unknown model", ["train", "--set", "model.name=resnet"], "resnet"),
    ("unknown data set", ["train", "--set", "data.name=imagenet"], "imagenet"),
    ("unknown metric", ["train", "--set", "eval.metrics=[fidd]"], "fidd"),
    ("misapplied objective knob", ["train", "--set", "objective.name=wgan_div", "--set", "objective.gp_weight=5"],
     "gp_weight"),
    ("misapplied rule knob", ["train", "--set", "train.update=simultaneous", "--set", "train.n_critic=5"], "n_critic"),
    ("misapplied sam on cgd", ["train", "--set", "train.update=cgd", "--set", "train.sam_rho=0.1",
                               "--set", "objective.name=wgan"], "sam_rho"),
    ("misapplied model knob", ["train", "--set", "model.ngf=8"], "model.ngf"),
    ("unknown compiler backend", ["train", "--set", "train.compile=true", "--set", "train.compile_backend=tvmx"],
     "train.compile_backend"),
    ("compile mode without inductor", ["train", "--set", "train.compile=true", "--set", "train.compile_backend=eager",
                                       "--set", "train.compile_mode=max-autotune"], "train.compile_mode"),
    ("zero-sum rule on ns", ["train", "--set", "train.update=acgd", "--set", "objective.name=ns"], "zero-sum"),
    ("critic rule on mmd", ["train", "--set", "train.update=cgd", "--set", "objective.name=mmd"], "critic"),
    ("r1 on mmd", ["train", "--set", "objective.name=mmd", "--set", "regularizers.r1=1"], "critic"),
    ("bad override syntax", ["train", "--set", "train.steps"], "KEY=VALUE"),
    ("missing config file", ["train", "--config", f"{R}/nope.yaml"], "nope.yaml"),
    ("invalid yaml", ["train", "--config", f"{R}/bad.yaml"], "bad.yaml"),
    ("yaml not a mapping", ["train", "--config", f"{R}/list.yaml"], "list.yaml"),
    ("binary yaml", ["train", "--config", f"{R}/binary.yaml"], "binary.yaml"),
    ("unknown key in file", ["train", "--config", f"{R}/unknown.yaml"], "trian"),
    ("misapplied key in file", ["train", "--config", f"{R}/misapplied.yaml"], "gp_weight"),
    ("infinite value in file", ["train", "--config", f"{R}/inf.yaml"], "train.lr_g"),
    ("batch above data", ["config", "--set", "train.steps=0"], "train.steps"),
    # run directories and output paths
    ("out is a file", ["train", "--out", f"{R}/file.txt", *TINY], "file.txt"),
    ("out is a user's folder", ["train", "--out", f"{R}/mine", *TINY], "mine"),
    ("overwrite a user's folder", ["train", "--out", f"{R}/mine", "--overwrite", *TINY], "not an occamgan run"),
    ("out under a file", ["train", "--out", f"{R}/file.txt/run", *TINY], "file.txt"),
    ("existing run without flags", ["train", "--out", f"{R}/run", *TINY], "--resume"),
    ("resume and overwrite", ["train", "--out", f"{R}/run", "--resume", "--overwrite"], "exclude each other"),
    ("resume without checkpoint", ["train", "--out", f"{R}/mine", "--resume"], "no checkpoint"),
    ("resume needs out", ["train", "--resume"], "--out"),
    ("resume another game", ["train", "--out", f"{R}/run", "--resume", "--set", "model.width=4"], "different game"),
    # checkpoints and run files read back
    ("text checkpoint", ["sample", f"{R}/run_textckpt", "--out", f"{R}/s1"], "last.pt"),
    ("empty checkpoint", ["sample", f"{R}/run_empty", "--out", f"{R}/s2"], "last.pt"),
    ("zip garbage checkpoint", ["sharpness", f"{R}/run_zip"], "last.pt"),
    ("foreign checkpoint", ["eval", f"{R}/run_foreign", "--metrics", "toy"], "last.pt"),
    ("run with bad config", ["sample", f"{R}/run_badyaml", "--out", f"{R}/s3"], "config.yaml"),
    ("not a run", ["sample", f"{R}/mine", "--out", f"{R}/s4"], "mine"),
    ("eval a file", ["eval", f"{R}/file.txt"], "file.txt"),
    # command options
    ("sample bad format", ["sample", f"{R}/run", "--out", f"{R}/s5", "--format", "gif"], "--format"),
    ("sample out is a file", ["sample", f"{R}/run", "--out", f"{R}/file.txt"], "file.txt"),
    ("sample into a user's folder", ["sample", f"{R}/run", "--out", f"{R}/mine"], "mine"),
    ("eval unknown metric", ["eval", f"{R}/run", "--metrics", "fidd"], "fidd"),
    ("eval image metric on toy data", ["eval", f"{R}/run", "--metrics", "fid_lenet", "--no-record"], "lenet"),
    ("eval bad ref split", ["eval", f"{R}/run", "--ref-split", "dev"], "--ref-split"),
    ("sharpness bad player", ["sharpness", f"{R}/run", "--player", "x"], "--player"),
    ("sharpness k too big", ["sharpness", f"{R}/run", "-k", "100000", "--no-record"], "exceeds"),
    ("evidence bad method", ["evidence", f"{R}/run", "--method", "mcmc"], "--method"),
    ("evidence without sigma", ["evidence", f"{R}/run"], "--sigma"),
    ("evidence sigma and fit", ["evidence", f"{R}/run", "--sigma", "0.1", "--fit-sigma"], "exclude"),
    ("evidence negative sigma", ["evidence", f"{R}/run", "--sigma", "-1"], "--sigma"),
    ("report of a user's folder", ["report", f"{R}/mine"], "mine"),
    ("report out under a file", ["report", f"{R}/run", "--out", f"{R}/file.txt/r.html"], "file.txt"),
    ("sweep bad grid", ["sweep", "--out", f"{R}/sw1", "--grid", "model.latent_dim"], "--grid"),
    ("sweep grid unknown key", ["sweep", "--out", f"{R}/sw2", "--grid", "model.bogus=1,2"], "model.bogus"),
    ("sweep repeated value", ["sweep", "--out", f"{R}/sw3", "--grid", "model.depth=1,1"], "repeated"),
    ("sweep zero jobs", ["sweep", "--out", f"{R}/sw4", "--grid", "model.depth=0,1", "--jobs", "0"], "--jobs"),
    ("sweep into a user's folder", ["sweep", "--out", f"{R}/mine", "--grid", "model.depth=0,1"], "mine"),
    ("sweep with a corrupt plan", ["sweep", "--out", f"{R}/sweep_badjson", "--grid", "model.depth=0,1"], "sweep.json"),
    ("select not a sweep", ["select", f"{R}/mine"], "mine"),
    ("select unknown score", ["select", f"{R}/sweep", "--by", "accuracy"], "accuracy"),
    ("divergences not png", ["divergences", "--out", f"{R}/spectra.jpg"], "PNG"),
    ("divergences existing file", ["divergences", "--out", f"{R}/file.txt"], "file.txt"),
    ("divergences unknown name", ["divergences", "--name", "klx"], "klx"),
    ("features train unlabelled", ["features", "train", "--data", "ring8", "--out", f"{R}/f.pt"], "ring8"),
    ("model too large for memory", ["train", "--set", "model.width=200000", "--out", f"{R}/huge"], "parameters"),
    ("huge seed", ["train", "--set", "seed=100000000000000000000000"], "seed"),
    ("negative data seed", ["train", "--set", "data.seed=-1"], "data.seed"),
]


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and ".lock" not in p.name}


def run_cli(args: list[str], home: Path, monkeypatch) -> tuple[int, str]:
    """The command in this process (as `occamgan ...` runs it): exit code and everything printed."""
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("OCCAMGAN_OFFLINE", "1")
    result = CliRunner().invoke(app, args)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a traceback the user would have seen
    return result.exit_code, result.output


def test_the_table_is_large():
    assert len(CASES) >= 60


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_fault_is_one_line_and_changes_nothing(case, world, tmp_path, monkeypatch):
    _, argv, culprit = case
    args = [a.replace(R, str(world)) for a in argv]
    before = snapshot(world)
    code, output = run_cli(args, tmp_path, monkeypatch)
    assert code == 2, (code, output[-2000:])
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error"), output
    assert "Traceback" not in output and culprit in lines[0], lines[0]
    assert snapshot(world) == before


@pytest.mark.parametrize("argv, culprit", [
    (["sample", "{root}/run_textckpt", "--out", "{tmp}/s"], "last.pt"),
    (["trian"], "trian"),  # the parser's own errors are one line too
    (["train", "--bogus"], "--bogus"),
    (["sample", "{root}/run", "--out", "{tmp}/s", "--seed", "-3"], "--seed"),
    (["sample"], "run_dir"),
    (["train", "--set", "seed=100000000000000000000000"], "seed"),
])
def test_a_real_process_prints_one_line_and_exits_2(world, tmp_path, argv, culprit):
    """The same contract through the installed entry point (a fresh interpreter, no test runner)."""
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / ".cache"), "OCCAMGAN_OFFLINE": "1"}
    args = [a.replace("{root}", str(world)).replace("{tmp}", str(tmp_path)) for a in argv]
    result = subprocess.run([sys.executable, "-m", "occamgan", *args], capture_output=True, text=True, env=env,
                            timeout=300)
    assert result.returncode == 2 and result.stdout == "", result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and culprit in lines[0] and "Traceback" not in result.stderr, result.stderr
