"""The Trainer: batches in, ``update_rule.step(game, batch)``, then callbacks on a schedule
(architecture note, idea 3): EMA update, NaN guard, JSONL/TensorBoard logging and progress bar,
evaluation, atomic full-state checkpoints. It knows nothing of which objective or rule runs."""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor

from ..build import Experiment
from ..errors import TrainingError
from .checkpoint import check_signature, game_signature, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .logging import JsonlLog, Progress, TensorBoardLog

CHECKPOINT_NAME = "last.pt"
#: offsets that give the batch order and the evaluation latents their own seeded streams
BATCH_SEED_OFFSET = 1
EVAL_SEED_OFFSET = 2
#: image runs write a GRID_ROWS x GRID_ROWS sample grid at every checkpoint
GRID_ROWS = 8
GRID_SAMPLES = GRID_ROWS * GRID_ROWS

Evaluator = Callable[[Experiment, int], dict[str, Any]]


class Trainer:
    def __init__(self, exp: Experiment, run_dir: Path, evaluate: Evaluator | None = None,
                 progress: bool | None = None):
        self.exp, self.run_dir = exp, run_dir
        self.cfg = exp.cfg
        self.evaluate = evaluate
        self.progress_enabled = progress
        self.sampler = exp.data.batch_sampler(self.cfg.train.batch_size, self.cfg.seed + BATCH_SEED_OFFSET,
                                              exp.device)
        self.step = 0

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / "checkpoints" / CHECKPOINT_NAME

    # ------------------------------------------------------------------ state
    def state(self) -> dict[str, Any]:
        g = self.exp.game
        return {
            "step": self.step,
            "config": self.cfg.to_yaml(),
            "signature": json.dumps(game_signature(self.cfg)),
            "generator": g.generator.state_dict(),
            "discriminator": g.discriminator.state_dict() if g.discriminator is not None else {},
            "ema": self.exp.ema.state_dict(),
            "rule": self.exp.rule.state_dict(),
            "sampler": self.sampler.state_dict(),
            "rng": rng_state(),
        }

    def restore(self, path: Path) -> None:
        state = load_checkpoint(path)
        check_signature(json.loads(state["signature"]), game_signature(self.cfg), path)
        g = self.exp.game
        try:
            g.generator.load_state_dict(state["generator"])
            if g.discriminator is not None:
                g.discriminator.load_state_dict(state["discriminator"])
            self.exp.ema.load_state_dict(state["ema"])
            self.exp.rule.load_state_dict(state["rule"])
        except (RuntimeError, KeyError, ValueError) as exc:
            from ..errors import CheckpointError

            first = str(exc).strip().splitlines()[0][:200]
            raise CheckpointError(f"checkpoint {str(path)!r} does not fit this game: {first}") from None
        self.sampler.load_state_dict(state["sampler"])
        set_rng_state(state["rng"])
        self.step = int(state["step"])

    # ------------------------------------------------------------------ loop
    def fit(self, resume: bool = False) -> dict[str, Any]:
        if resume:
            self.restore(self.checkpoint_path)
        total = self.cfg.train.steps
        log = JsonlLog(self.run_dir / "metrics.jsonl", resume_step=self.step if resume else None)
        tb = TensorBoardLog(self.run_dir / "tensorboard") if self.cfg.train.tensorboard else None
        bar = Progress(total, self.step, self.progress_enabled)
        start, first_step = time.perf_counter(), self.step
        try:
            while self.step < total:
                stats = self.exp.rule.step(self.exp.game, self.sampler.next)
                self.step += 1
                self._guard(stats)
                self.exp.ema.update(self.exp.game.generator, self.step)
                self._callbacks(stats, log, tb, total)
                bar.update(1, stats)
        finally:
            bar.close()
            log.close()
            if tb is not None:
                tb.close()
        elapsed = time.perf_counter() - start
        rate = (self.step - first_step) / elapsed if elapsed > 0 else float("nan")
        return {"step": self.step, "seconds": elapsed, "steps_per_second": rate}

    def _callbacks(self, stats: dict[str, Any], log: JsonlLog, tb: TensorBoardLog | None, total: int) -> None:
        t = self.cfg.train
        last = self.step == total
        if self.step % t.log_every == 0 or last:
            record = {"step": self.step, **stats}
            log.write(record)
            if tb is not None:
                tb.write(record)
        every = self.cfg.eval.every
        if self.evaluate is not None and every and self.step % every == 0 and not last:
            record = {"step": self.step, **{f"eval/{k}": v for k, v in self.evaluate(self.exp, self.step).items()}}
            log.write(record)
            if tb is not None:
                tb.write(record)
        if self.step % t.checkpoint_every == 0 or last:
            save_checkpoint(self.checkpoint_path, self.state())
            if self.exp.data.kind == "image":
                self._save_grid()

    def _save_grid(self) -> None:
        """Image runs: a grid of the same latents at every checkpoint shows training progress."""
        from ..image_grid import save_image_grid

        cfg = self.cfg
        images = draw_samples(self.exp, GRID_SAMPLES, cfg.seed + EVAL_SEED_OFFSET, cfg.eval.use_ema)
        save_image_grid(images, self.run_dir / "samples" / f"step_{self.step:07d}.png", nrow=GRID_ROWS)

    def _guard(self, stats: dict[str, Any]) -> None:
        """Stop on a non-finite loss before anything is logged or checkpointed."""
        for key, value in stats.items():
            number = float(value.item() if hasattr(value, "item") else value)
            if key.startswith("loss") and not math.isfinite(number):
                raise TrainingError(
                    f"{key} is {number} at step {self.step}; the last good checkpoint is "
                    f"{self.checkpoint_path} (lower the learning rates or add a penalty)"
                )


@torch.no_grad()
def draw_samples(exp: Experiment, n: int, seed: int, use_ema: bool = True, batch: int = 4096) -> Tensor:
    """n samples from the EMA (or raw) generator in eval mode, with their own seeded latents."""
    g = exp.ema.generator if use_ema else exp.game.generator
    was_training = g.training
    g.eval()
    gen = torch.Generator().manual_seed(seed)
    out = []
    try:
        for start in range(0, n, batch):
            z = torch.randn(min(batch, n - start), exp.game.latent_dim, generator=gen).to(exp.device)
            out.append(g(z).float())
    finally:
        g.train(was_training)
    return torch.cat(out)
