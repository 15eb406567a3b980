"""What the Trainer does after a training step, as objects with a schedule (architecture note,
idea 3): the NaN guard, the generator EMA, the log (JSONL, TensorBoard, progress bar), periodic
evaluation, checkpoints and image grids. The Trainer calls every callback that is due, in order;
it knows nothing of objectives, rules or data kinds, and :func:`default_callbacks` decides which
callbacks a run gets from its config and data.
"""
from __future__ import annotations

import contextlib
import math
from typing import Any, Callable

from .. import distributed
from ..errors import TrainingError
from .logging import JsonlLog, Progress, TensorBoardLog

#: the Trainer calling the callbacks (not imported: the trainer imports this module)
Trainer = Any

#: image runs write a GRID_ROWS x GRID_ROWS sample grid at every checkpoint
GRID_ROWS = 8


class Callback:
    """Runs after every ``every``-th step (0: never on a schedule) and, with ``at_end``, after the
    last step of the run."""

    every: int = 1
    at_end: bool = True

    def due(self, step: int, last: bool) -> bool:
        return bool(self.every and step % self.every == 0) or (last and self.at_end)

    def __call__(self, trainer: Trainer, stats: dict[str, Any]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release files at the end of :meth:`Trainer.fit` (also when it fails)."""


class NaNGuard(Callback):
    """Stop on a non-finite loss before anything is logged or checkpointed.

    Losses that are still tensors on the device are not read every step (a host sync per step
    would stall the GPU): each step folds "the first non-finite step and its losses" into a
    flag on the device, and the flag is read only at the steps where something is written or
    evaluated (``writers``: log, evaluation, checkpoint, sample grid, the last step). So the run
    stops before a bad record or checkpoint exists, naming the first bad step; the steps after
    it until the check are wasted compute, nothing else. Python numbers are checked at once."""

    def __init__(self, writers: list[Callback] | None = None):
        self.writers = writers  # None: read every step
        self.keys: list[str] | None = None
        self.first_step: Any = None
        self.first_values: Any = None

    def __call__(self, trainer: Trainer, stats: dict[str, Any]) -> None:
        import torch

        losses = {k: v for k, v in stats.items() if k.startswith("loss")}
        on_device = {k: v for k, v in losses.items() if isinstance(v, torch.Tensor) and v.numel() == 1}
        for key, value in losses.items():
            if key not in on_device and not math.isfinite(float(value)):
                self._stop(trainer, key, float(value), trainer.step)
        if on_device:
            self._fold(on_device, trainer.step)
        last = trainer.step == trainer.cfg.train.steps
        stopping = getattr(trainer, "_signal", None) is not None  # a signal's checkpoint follows this step
        if self.first_step is not None and (self.writers is None or last or stopping
                                            or any(w.due(trainer.step, last) for w in self.writers)):
            self.check(trainer)

    def _fold(self, values: dict[str, Any], step: int) -> None:
        import torch

        if self.keys != list(values):  # a new set of losses: check what was pending first
            self.keys, self.first_step, self.first_values = list(values), None, None
        vector = torch.stack([v.detach().reshape(()).float() for v in values.values()])
        if self.first_step is None:
            self.first_step = torch.full((), -1, dtype=torch.long, device=vector.device)
            self.first_values = torch.zeros_like(vector)
        new = (~torch.isfinite(vector)).any() & (self.first_step < 0)
        self.first_step = torch.where(new, torch.full_like(self.first_step, step), self.first_step)
        self.first_values = torch.where(new, vector, self.first_values)

    def check(self, trainer: Trainer) -> None:
        """Read the flag (one host sync) and stop if some step since the start was non-finite."""
        if self.first_step is None:
            return
        step = int(self.first_step.item())
        if step < 0:
            return
        values = self.first_values.tolist()
        key, value = next((k, v) for k, v in zip(self.keys or [], values) if not math.isfinite(v))
        self._stop(trainer, key, value, step)

    @staticmethod
    def _stop(trainer: Trainer, key: str, number: float, step: int) -> None:
        path = trainer.files.checkpoint_path
        where = (f"the last good checkpoint is {path}; resume it with lower learning rates "
                 f"(occamgan train --out {trainer.files.path} --resume --set train.lr_g=... "
                 "--set train.lr_d=...)" if path.is_file() else
                 "no checkpoint was written yet; lower the learning rates and start again")
        raise TrainingError(f"{key} is {number} at step {step}; {where}")


class EMAUpdate(Callback):
    """The generator EMA follows every optimiser step."""

    def __call__(self, trainer: Trainer, stats: dict[str, Any]) -> None:
        trainer.exp.ema.update(trainer.exp.game.generator, trainer.step)


class Log(Callback):
    """Training statistics into metrics.jsonl (and TensorBoard) every ``log_every`` steps."""

    def __init__(self, trainer: Trainer, every: int, tensorboard: bool):
        self.every = every
        self.jsonl = JsonlLog(trainer.files.metrics_path)
        self.tb = TensorBoardLog(trainer.files.path / "tensorboard") if tensorboard else None

    def write(self, record: dict[str, Any]) -> None:
        self.jsonl.write(record)
        if self.tb is not None:
            self.tb.write(record)

    def __call__(self, trainer: Trainer, stats: dict[str, Any]) -> None:
        self.write({"step": trainer.step, **stats})

    def close(self) -> None:
        self.jsonl.close()
        if self.tb is not None:
            self.tb.close()


class Evaluate(Callback):
    """Scores during training (``eval.every``), logged as ``eval/<name>``; the final scores are
    the run's summary, recorded when training ends."""

    at_end = False

    def __init__(self, every: int, evaluate: Callable[[Any], dict[str, Any]], log: Log):
        self.every, self.evaluate, self.log = every, evaluate, log

    def due(self, step: int, last: bool) -> bool:
        return super().due(step, last) and not last

    def __call__(self, trainer: Trainer, stats: dict[str, Any]) -> None:
        with _shared_rng_untouched():
            values = self.evaluate(trainer.exp)
        self.log.write({"step": trainer.step, **{f"eval/{k}": v for k, v in values.items()
                                                 if not isinstance(v, dict)}})


class Checkpoint(Callback):
    """The full training state, atomically, every ``checkpoint_every`` steps and at the end.
    Data-parallel: every rank first checks that all hold the same weights and RNG state, then
    rank 0 writes."""

    def __init__(self, every: int):
        self.every = every

    def __call__(self, trainer: Trainer, stats: dict[str, Any]) -> None:
        game = trainer.exp.game
        distributed.check_in_sync([*game.generator_parameters(), *game.discriminator_parameters()])
        trainer.save_checkpoint()


class ImageGrid(Callback):
    """A grid of the same latents at every checkpoint shows an image run's progress."""

    def __init__(self, every: int, seed: int, use_ema: bool):
        self.every, self.seed, self.use_ema = every, seed, use_ema

    def __call__(self, trainer: Trainer, stats: dict[str, Any]) -> None:
        from ..image_grid import save_image_grid
        from ..sampling import sample_generator

        exp = trainer.exp
        g = exp.ema.generator if self.use_ema else exp.game.generator
        with _shared_rng_untouched():
            images = sample_generator(g, GRID_ROWS * GRID_ROWS, exp.game.latent_dim, seed=self.seed, device=exp.device)
        save_image_grid(images, trainer.files.grid_path(trainer.step), nrow=GRID_ROWS)


class ProgressBar(Callback):
    """The bar advances every step; its losses (a host read of device values) are refreshed
    at the log steps only."""

    def __init__(self, trainer: Trainer, enabled: bool | None):
        self.bar = Progress(trainer.cfg.train.steps, trainer.step, enabled)
        self.show_every = trainer.cfg.train.log_every

    def __call__(self, trainer: Trainer, stats: dict[str, Any]) -> None:
        if self.bar.bar.disable:
            return
        if trainer.step % self.show_every == 0 or trainer.step == trainer.cfg.train.steps:
            self.bar.update(1, stats)
        else:
            self.bar.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def default_callbacks(trainer: Trainer, evaluate: Callable[[Any], dict[str, Any]] | None,
                      progress: bool | None, eval_seed: int) -> list[Callback]:
    """The callbacks of a run, in the order they run after each step. Data-parallel: ranks
    other than 0 keep the guard, the EMA and the checkpoint's consistency check, and write
    nothing."""
    cfg = trainer.cfg
    if not distributed.is_main():
        checkpoint = Checkpoint(cfg.train.checkpoint_every)
        return [NaNGuard([checkpoint]), EMAUpdate(), checkpoint]
    log = Log(trainer, cfg.train.log_every, cfg.train.tensorboard)
    guard = NaNGuard()
    callbacks: list[Callback] = [guard, EMAUpdate(), log]
    if evaluate is not None and cfg.eval.every:
        callbacks.append(Evaluate(cfg.eval.every, evaluate, log))
    callbacks.append(Checkpoint(cfg.train.checkpoint_every))
    if trainer.exp.data.kind == "image":
        callbacks.append(ImageGrid(cfg.train.checkpoint_every, eval_seed, cfg.eval.use_ema))
    guard.writers = callbacks[2:]  # the guard reads its device flag before any of these runs
    callbacks.append(ProgressBar(trainer, progress))
    return callbacks


def _shared_rng_untouched() -> contextlib.AbstractContextManager:
    """Data-parallel: what rank 0 alone runs (evaluation, sample grids) leaves the global RNG,
    which every rank must hold in the same state, as it was."""
    if not distributed.is_distributed():
        return contextlib.nullcontext()
    import torch

    return torch.random.fork_rng(devices=[torch.cuda.current_device()] if torch.cuda.is_initialized() else [])
