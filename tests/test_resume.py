"""Checkpoints: exact resume on CPU, atomic writes, refusal of foreign or corrupt files."""
import json

import pytest
import torch

import occamgan
from occamgan.errors import CheckpointError, RunDirError
from occamgan.train import callbacks as callbacks_mod
from occamgan.train.checkpoint import load_checkpoint, save_checkpoint


def params(run_dir):
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    return state


def assert_same_state(a, b):
    for part in ["generator", "discriminator", "ema"]:
        assert a[part].keys() == b[part].keys()
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), f"{part}.{k} differs"
    assert a["step"] == b["step"]


@pytest.mark.parametrize("extra", [[], ["objective.name=wgan_gp", "train.n_critic=2", "regularizers.sigma=0.1"],
                                   ["objective.name=rgan", "train.warmup_steps=8", "train.ema_start=5"]])
def test_resume_equals_uninterrupted(tmp_path, tiny_overrides, extra):
    # a constant lr after the warm-up: a decay to train.steps would differ between 20 and 30 steps
    ov = tiny_overrides + extra + ["train.lr_decay=none"]
    full = occamgan.train(overrides=ov + ["train.steps=30"], out=tmp_path / "full", progress=False)
    occamgan.train(overrides=ov + ["train.steps=20"], out=tmp_path / "part", progress=False)
    resumed = occamgan.train(overrides=["train.steps=30"], out=tmp_path / "part", resume=True, progress=False)
    assert_same_state(params(tmp_path / "full"), params(tmp_path / "part"))
    assert resumed.metrics == full.metrics


def test_extending_a_decayed_run_follows_the_new_schedule(tmp_path, tiny_overrides):
    ov = tiny_overrides + ["train.lr_decay=linear", "train.lr_decay_end=0.0", "train.log_every=1"]
    occamgan.train(overrides=ov + ["train.steps=20"], out=tmp_path / "run", progress=False)
    occamgan.train(overrides=["train.steps=40"], out=tmp_path / "run", resume=True, progress=False)
    lr = {r["step"]: r["lr_g"] for r in map(json.loads, (tmp_path / "run" / "metrics.jsonl").read_text().splitlines())}
    assert lr[20] == pytest.approx(0.0, abs=1e-12)  # the 20-step run ended at the bottom of its decay
    # after the resume, the factor is that of step t of a 40-step decay (logged after the step)
    assert lr[21] == pytest.approx(1e-3 * (1 - 21 / 40)) and lr[40] == pytest.approx(0.0, abs=1e-12)


def test_killed_run_resumes_from_last_checkpoint(tmp_path, tiny_overrides, monkeypatch):
    ov = tiny_overrides + ["train.steps=30", "train.checkpoint_every=10", "train.log_every=1"]
    occamgan.train(overrides=ov, out=tmp_path / "full", progress=False)

    original = callbacks_mod.NaNGuard.__call__

    def crash(self, trainer, stats):
        if trainer.step == 25:
            raise KeyboardInterrupt  # killed between checkpoints
        original(self, trainer, stats)

    monkeypatch.setattr(callbacks_mod.NaNGuard, "__call__", crash)
    with pytest.raises(KeyboardInterrupt):
        occamgan.train(overrides=ov, out=tmp_path / "killed", progress=False)
    monkeypatch.setattr(callbacks_mod.NaNGuard, "__call__", original)
    assert load_checkpoint(tmp_path / "killed" / "checkpoints" / "last.pt")["step"] == 20
    occamgan.train(out=tmp_path / "killed", resume=True, progress=False)
    assert_same_state(params(tmp_path / "full"), params(tmp_path / "killed"))
    steps = [json.loads(l)["step"] for l in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 31))


def test_checkpoint_of_another_game_is_refused(tmp_path, tiny_overrides):
    occamgan.train(overrides=tiny_overrides, out=tmp_path / "r", progress=False)
    with pytest.raises(CheckpointError, match="different game: model"):
        occamgan.train(overrides=tiny_overrides + ["model.width=8"], out=tmp_path / "r", resume=True, progress=False,
                       config={})
    with pytest.raises(CheckpointError, match="different game: objective"):
        occamgan.train({"objective": {"name": "hinge"}}, overrides=tiny_overrides, out=tmp_path / "r", resume=True,
                       progress=False)


def test_a_checkpoint_from_before_a_config_key_existed_loads_under_its_default(tmp_path):
    from occamgan.config import build_config
    from occamgan.train.checkpoint import check_signature, game_signature

    cfg = build_config({"model": {"name": "dcgan"}})
    saved = game_signature(cfg)
    del saved["model"]["d_norm"]  # as written before model.d_norm was added
    check_signature(saved, game_signature(cfg), tmp_path / "old.pt")
    other = build_config({"model": {"name": "dcgan", "d_norm": "none"}})
    with pytest.raises(CheckpointError, match="different game: model"):
        check_signature(saved, game_signature(other), tmp_path / "old.pt")


def test_corrupt_and_foreign_checkpoints(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_checkpoint(bad)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(CheckpointError, match="not an occamgan checkpoint"):
        load_checkpoint(foreign)


def test_loading_refuses_pickled_objects(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"format": 1, "x": Evil()}, path)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"step": 1})

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError):
        save_checkpoint(path, {"step": 2})
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_existing_run_dir_is_never_overwritten(tmp_path, tiny_overrides):
    out = tmp_path / "r"
    out.mkdir()
    (out / "precious.txt").write_text("keep")
    for overwrite in (False, True):  # a directory occamgan did not write is never replaced
        with pytest.raises(RunDirError, match="not an occamgan run directory") as refused:
            occamgan.train(overrides=tiny_overrides, out=out, overwrite=overwrite, progress=False)
        assert "--overwrite" not in str(refused.value)
    assert [p.name for p in out.iterdir()] == ["precious.txt"] and (out / "precious.txt").read_text() == "keep"
    with pytest.raises(RunDirError, match="cannot resume"):
        occamgan.train(overrides=tiny_overrides, out=out, resume=True, progress=False)
    run = tmp_path / "run"
    occamgan.train(overrides=tiny_overrides, out=run, progress=False)
    (run / "notes.txt").write_text("old")
    with pytest.raises(RunDirError, match="--resume .* or --overwrite"):
        occamgan.train(overrides=tiny_overrides, out=run, progress=False)
    occamgan.train(overrides=tiny_overrides, out=run, overwrite=True, progress=False)
    assert not (run / "notes.txt").exists() and (run / "summary.json").exists()
    a_file = tmp_path / "file"
    a_file.write_text("keep")
    with pytest.raises(RunDirError, match="is a file"):
        occamgan.train(overrides=tiny_overrides, out=a_file, overwrite=True, progress=False)
    assert a_file.read_text() == "keep"


def test_nan_guard_stops_with_a_training_error(tmp_path, tiny_overrides):
    from occamgan.errors import TrainingError

    with pytest.raises(TrainingError, match="loss_. is nan at step"):
        occamgan.train(overrides=tiny_overrides + ["train.lr_g=1e30", "train.lr_d=1e30"], out=tmp_path / "r",
                       progress=False)


def test_results_merge_into_the_last_record_or_append_and_into_the_summary(tmp_path):
    from occamgan.train.run_dir import RunDir

    run = RunDir(tmp_path)
    log = run.metrics_path
    log.write_text('{"step": 5, "loss_g": 1.0}\n{"step": 10, "loss_g": 0.5}\n')
    run.record_results(10, {"w2": 0.25, "protocol": {"n": 3}})
    run.record_results(12, {"w2": 0.125})
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert records == [{"step": 5, "loss_g": 1.0}, {"step": 10, "loss_g": 0.5, "eval/w2": 0.25, "eval/protocol": {"n": 3}},
                       {"step": 12, "eval/w2": 0.125}]
    assert run.read_summary() == {"step": 10, "metrics": {"w2": 0.125, "protocol": {"n": 3}}}
    log.write_text('{"step": 10, "loss_g": 0.5}\n{"step": 1')  # torn last line of a killed writer
    run.record_results(10, {"w2": 1.0})
    assert [json.loads(line) for line in log.read_text().splitlines()] == [{"step": 10, "loss_g": 0.5, "eval/w2": 1.0}]
