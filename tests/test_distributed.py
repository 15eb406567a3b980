"""Data-parallel training on torch.distributed (gloo, 2 CPU processes started by the tests).

A distributed step is the single-process step on the global batch: 3 steps on 2 ranks with
global batch B reach the parameters of 3 single-process steps with batch B, for every kind of
update (alternating with n_critic and WGAN-GP, ASAM, ACGD, GACGD, gradient regularisation with
likelihood relaxation, and DCGAN with SyncBatchNorm under a gradient penalty). A distributed run
whose rank 1 raises ends with an exit code != 0 and a message naming rank 1; resumed from its
last checkpoint it ends bit-exactly where the uninterrupted distributed run does.

Run as a script (``python -m torch.distributed.run ... tests/test_distributed.py equality OUT``)
this file is the worker the tests launch.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

BASE = ["train.device=cpu", "train.lr_decay=none", "train.lr_g=1e-3", "train.lr_d=1e-3"]
TOY = ["train.batch_size=32", "model.width=16", "model.depth=1", "data.n_samples=256"]

#: case -> overrides; every objective here is a mean of per-sample terms (the exact case)
CASES = {
    "alternating_wgan_gp_ncritic2": [*TOY, "objective.name=wgan_gp", "train.n_critic=2"],
    "asam": [*TOY, "objective.name=wgan_gp", "train.sam_rho=0.05"],
    "acgd": [*TOY, "objective.name=wgan_gp", "train.update=acgd"],
    "gacgd": [*TOY, "train.update=gacgd", "objective.name=minimax"],
    "grad_reg_sigma": [*TOY, "regularizers.grad_reg=0.1", "regularizers.sigma=0.1", "objective.name=wgan_gp"],
    "dcgan_syncbn": ["data.name=digits", "data.image_size=16", "model.name=dcgan", "model.ngf=8", "model.ndf=8",
                     "train.batch_size=16", "objective.name=wgan_gp"],
}
STEPS = 3

#: the CLI runs of the resume test: checkpoints at steps 2 and 4
RUN = BASE + TOY + ["objective.name=wgan_gp", "train.n_critic=2", "train.steps=4", "train.checkpoint_every=2",
              "train.log_every=1", "eval.n_samples=128", "eval.w2_samples=64", "train.report=false"]

#: makes rank 1 of a data-parallel run raise after step 3 (imported by every Python process
#: started with its directory first on PYTHONPATH)
FAULT = """
import os
if os.environ.get("RANK") == "1":
    from occamgan.train import callbacks
    original = callbacks.NaNGuard.__call__
    def fail(self, trainer, stats):
        if trainer.step == 3:
            raise RuntimeError("injected failure on this rank")
        original(self, trainer, stats)
    callbacks.NaNGuard.__call__ = fail
"""

#: makes rank 1 alone receive SIGTERM during step 2 (after that step's agreement)
SIGNAL = """
import os, signal
if os.environ.get("RANK") == "1":
    from occamgan.train import callbacks
    original = callbacks.NaNGuard.__call__
    def signalled(self, trainer, stats):
        if trainer.step == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        original(self, trainer, stats)
    callbacks.NaNGuard.__call__ = signalled
"""


def run_steps(overrides: list[str], steps: int) -> dict[str, torch.Tensor]:
    """``steps`` update-rule steps from the seeded start, as the Trainer takes them (in a
    process group when launched by torchrun); returns G's and D's parameters and buffers."""
    from occamgan import distributed
    from occamgan.api import resolve_config
    from occamgan.build import build_experiment, resolve_device
    from occamgan.train.checkpoint import set_rng_state
    from occamgan.train.trainer import BATCH_SEED_OFFSET

    cfg = resolve_config(None, BASE + overrides)
    distributed.init(resolve_device(cfg.train.device))
    exp = build_experiment(cfg)
    sampler = exp.data.batch_sampler(cfg.train.batch_size, cfg.seed + BATCH_SEED_OFFSET, exp.device,
                                     rank=distributed.rank(), world=distributed.world_size())
    set_rng_state(exp.init_rng)
    for _ in range(steps):
        exp.rule.step(exp.game, sampler.next)
    state = {f"g.{k}": v.detach().clone() for k, v in exp.game.generator.state_dict().items()}
    state.update({f"d.{k}": v.detach().clone() for k, v in exp.game.discriminator.state_dict().items()})
    return state


def sync_batchnorm_check() -> dict[str, torch.Tensor]:
    """SyncBatchNorm on this rank's shard: outputs, gradients (through a gradient penalty, i.e.
    a double backward) and running statistics, to compare with BatchNorm on the whole batch."""
    from occamgan import distributed

    torch.manual_seed(0)
    x = torch.randn(8, 3, 4, 4) * 2 + 1
    bn = distributed.convert_sync_batchnorm(torch.nn.Sequential(torch.nn.BatchNorm2d(3)))
    with torch.no_grad():
        bn[0].weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
        bn[0].bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
    xs = distributed.shard(x).clone().requires_grad_(True)
    out = bn(xs)
    (gx,) = torch.autograd.grad(out.pow(3).sum(), xs, create_graph=True)
    (gx.pow(2).sum() + out.pow(2).sum()).backward()
    distributed.average_gradients(bn.parameters())
    return {"out": out.detach(), "weight_grad": bn[0].weight.grad * distributed.world_size(),
            "bias_grad": bn[0].bias.grad * distributed.world_size(), "running_mean": bn[0].running_mean.clone(),
            "running_var": bn[0].running_var.clone()}


def worker(mode: str, out: Path) -> None:
    from occamgan import distributed

    results = {name: run_steps(overrides, STEPS) for name, overrides in CASES.items()}
    results["syncbn"] = sync_batchnorm_check()
    outs = [None] * distributed.world_size()
    torch.distributed.all_gather_object(outs, results["syncbn"]["out"])
    results["syncbn"]["out"] = torch.cat(outs)
    if distributed.is_main():
        torch.save(results, out / "equality.pt")
    # the uninterrupted distributed run that the resumed one must reach
    import occamgan

    occamgan.train(overrides=RUN, out=out / "full", overwrite=True, progress=False)


# --------------------------------------------------------------------------- the tests
def _env(extra_path: Path | None = None) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OCCAMGAN_DIST_TIMEOUT": "60"}
    paths = [str(extra_path)] if extra_path else []
    env["PYTHONPATH"] = os.pathsep.join(paths + [str(ROOT / "src"), env.get("PYTHONPATH", "")])
    return env


def _run(cmd: list[str], env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


#: what a rank prints when the C++ runtime aborts it (seen once in a CI-like run: a gloo thread
#: torn down under a busy machine), as opposed to a failure of the code under test
NATIVE_ABORT = ("terminate called without an active exception", "Signal 6 (SIGABRT)")


def _run_job(cmd: list[str], env: dict[str, str], attempts: int = 2) -> subprocess.CompletedProcess:
    """Launch a multi-process job; relaunch once when a rank died of a native abort rather than
    of an error of ours (every assertion is then made on the relaunched, complete job)."""
    for attempt in range(attempts):
        proc = _run(cmd, env)
        aborted = proc.returncode != 0 and any(sign in proc.stderr for sign in NATIVE_ABORT)
        if not aborted or attempt == attempts - 1:
            return proc
    return proc


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    """One 2-rank job: every equality case, the SyncBatchNorm check, and an uninterrupted run;
    under pytest-xdist the workers of one test run share it (file lock) instead of each
    launching their own."""
    import fcntl

    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    base = tmp_path_factory.getbasetemp()
    out = base.parent / f"dist-{run_id}" if run_id else base / "dist"
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / "done").exists():
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                   str(Path(__file__).resolve()), "equality", str(out)]
            proc = _run_job(cmd, _env())
            assert proc.returncode == 0, proc.stderr[-4000:]
            (out / "done").write_text("ok")
    return out, torch.load(out / "equality.pt", weights_only=True)


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm().clamp_min(1e-12))


@pytest.mark.parametrize("case", list(CASES))
def test_two_ranks_take_the_single_process_steps_on_the_global_batch(launched, case):
    _, results = launched
    single = run_steps(CASES[case], STEPS)
    dist = results[case]
    assert dist.keys() == single.keys()
    start = run_steps(CASES[case], 0)
    moved = max(_relative(single[k], start[k]) for k in single if single[k].is_floating_point())
    assert moved > 1e-4  # the steps did move the players
    for key in single:
        if single[key].is_floating_point():
            assert _relative(dist[key], single[key]) < 1e-5, key
        else:
            assert torch.equal(dist[key], single[key]), key


def test_sync_batchnorm_is_batchnorm_on_the_global_batch(launched):
    _, results = launched
    got = results["syncbn"]
    torch.manual_seed(0)
    x = (torch.randn(8, 3, 4, 4) * 2 + 1).requires_grad_(True)
    bn = torch.nn.BatchNorm2d(3)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
        bn.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
    out = bn(x)
    (gx,) = torch.autograd.grad(out.pow(3).sum(), x, create_graph=True)
    (gx.pow(2).sum() + out.pow(2).sum()).backward()
    torch.testing.assert_close(got["out"], out.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got["weight_grad"], bn.weight.grad, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(got["bias_grad"], bn.bias.grad, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(got["running_mean"], bn.running_mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got["running_var"], bn.running_var, rtol=1e-5, atol=1e-6)


def test_a_failing_rank_stops_the_job_and_the_resumed_run_ends_where_the_uninterrupted_one_does(
        launched, tmp_path):
    from occamgan.train.checkpoint import load_checkpoint

    out, _ = launched
    (tmp_path / "fault").mkdir()
    (tmp_path / "fault" / "sitecustomize.py").write_text(FAULT)
    run_dir = tmp_path / "killed"
    cli = [sys.executable, "-m", "occamgan", "train", "--nproc", "2", "--no-progress", "--out", str(run_dir)]
    sets = [a for item in RUN for a in ("--set", item)]
    failed = _run(cli + sets, _env(tmp_path / "fault"))
    assert failed.returncode != 0
    assert "rank 1 of 2 failed first" in failed.stderr, failed.stderr[-3000:]
    assert "injected failure on this rank" in failed.stderr
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["step"] == 2
    assert not (run_dir / "summary.json").exists()

    _resume_and_compare(cli, run_dir, out / "full")
    steps = [r["step"] for r in _read_jsonl(run_dir / "metrics.jsonl")]
    assert steps == [1, 2, 3, 4]
    assert _read_jsonl(run_dir / "metrics.jsonl")[-1]["loss_d"] == _read_jsonl(out / "full" / "metrics.jsonl")[-1]["loss_d"]


def test_a_signal_on_one_rank_stops_every_rank_after_the_same_step_and_resumes_exactly(launched, tmp_path):
    """Ranks agree on a pending signal only at writing steps (no host sync per step): SIGTERM on
    rank 1 during step 2 stops both ranks after step 3 (a log step), with one checkpoint."""
    from occamgan.train.checkpoint import load_checkpoint

    out, _ = launched
    (tmp_path / "fault").mkdir()
    (tmp_path / "fault" / "sitecustomize.py").write_text(SIGNAL)
    run_dir = tmp_path / "signalled"
    cli = [sys.executable, "-m", "occamgan", "train", "--nproc", "2", "--no-progress", "--out", str(run_dir)]
    sets = [a for item in RUN + ["train.log_every=3"] for a in ("--set", item)]
    stopped = _run_job(cli + sets, _env(tmp_path / "fault"))
    assert stopped.returncode != 0
    assert "SIGTERM at step 3" in stopped.stderr, stopped.stderr[-3000:]
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["step"] == 3
    assert [r["step"] for r in _read_jsonl(run_dir / "metrics.jsonl")] == [3]

    _resume_and_compare(cli, run_dir, out / "full")


def _resume_and_compare(cli: list[str], run_dir: Path, full: Path) -> None:
    """Resume the stopped distributed run; it ends bit-exactly where the uninterrupted one did."""
    from occamgan.train.checkpoint import load_checkpoint

    resumed = _run_job(cli + ["--resume"], _env())
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = load_checkpoint(full / "checkpoints" / "last.pt"), load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert a["step"] == b["step"] == 4
    for part in ("generator", "discriminator", "ema"):
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), f"{part}.{key}"


def test_a_global_batch_that_does_not_split_is_one_config_error(tmp_path):
    proc = _run([sys.executable, "-m", "occamgan", "train", "--nproc", "2", "--out", str(tmp_path / "r"),
                 "--set", "train.batch_size=33"], _env(), timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: config key train.batch_size: the global batch 33 does not split into 2 equal shards; use a multiple of 2"]


def test_nan_guard_reads_its_device_flag_before_writes_and_names_the_first_bad_step(tmp_path, monkeypatch,
                                                                                     tiny_overrides):
    import occamgan
    from occamgan.errors import TrainingError
    from occamgan.train.callbacks import NaNGuard
    from occamgan.update_rules.alternating import Alternating

    original, steps = Alternating.step, []

    def step(self, game, next_batch):
        stats = original(self, game, next_batch)
        steps.append(1)
        if len(steps) == 3:
            stats["loss_d"] = stats["loss_d"] * float("nan")  # still a tensor on the device
        return stats

    reads = []
    check = NaNGuard.check
    monkeypatch.setattr(Alternating, "step", step)
    monkeypatch.setattr(NaNGuard, "check", lambda self, trainer: (reads.append(trainer.step), check(self, trainer)))
    with pytest.raises(TrainingError, match="loss_d is nan at step 3; no checkpoint was written"):
        occamgan.train(overrides=tiny_overrides + ["train.log_every=5", "train.checkpoint_every=10"],
                       out=tmp_path / "r", progress=False)
    assert reads == [5]  # read once, at the first step that writes something
    assert not (tmp_path / "r" / "checkpoints" / "last.pt").exists()
    assert _read_jsonl(tmp_path / "r" / "metrics.jsonl") == []


def test_channels_last_players_take_the_same_steps():
    """train.channels_last (a CUDA fast path) changes memory layout only: 3 DCGAN steps agree
    with the default layout within 1e-5 relative (float32 rounding of other kernels)."""
    plain = run_steps(CASES["dcgan_syncbn"], STEPS)
    fast = run_steps(CASES["dcgan_syncbn"] + ["train.channels_last=true", "train.cudnn_benchmark=true"], STEPS)
    for key in plain:
        if plain[key].is_floating_point():
            assert _relative(fast[key], plain[key]) < 1e-5, key


def _read_jsonl(path: Path) -> list[dict]:
    import json

    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


if __name__ == "__main__":
    torch.set_num_threads(1)
    worker(sys.argv[1], Path(sys.argv[2]))
