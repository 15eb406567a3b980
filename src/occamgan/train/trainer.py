"""The Trainer: batches in, ``update_rule.step(game, batch)``, then the callbacks that are due
(architecture note, idea 3; :mod:`.callbacks`). It knows nothing of which objective, rule or data
kind runs. It owns the training state that checkpoints hold and restores it bit-exactly, and it
turns SIGINT (Ctrl-C) and SIGTERM (what SLURM and Kubernetes send before preemption) into a
checkpoint at the current step and a one-line :class:`~occamgan.errors.Interrupted`.
"""
from __future__ import annotations

import contextlib
import json
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from .. import distributed
from ..build import Experiment
from ..errors import Interrupted
from .callbacks import Callback, default_callbacks
from .checkpoint import (check_signature, game_signature, load_checkpoint, restore_players, rng_state,
                         save_checkpoint, set_rng_state)
from .run_dir import RunDir

#: offset that gives the batch order its own seeded stream (evaluation latents use + 2)
BATCH_SEED_OFFSET = 1
EVAL_SEED_OFFSET = 2

Evaluator = Callable[[Experiment], dict[str, Any]]


class Trainer:
    def __init__(self, exp: Experiment, run_dir: str | Path, evaluate: Evaluator | None = None,
                 progress: bool | None = None, callbacks: list[Callback] | None = None):
        self.exp, self.files = exp, RunDir(run_dir)
        self.cfg = exp.cfg
        self.evaluate = evaluate
        self.progress_enabled = progress
        self.extra_callbacks = callbacks or []
        # data-parallel: every rank draws the global batch from the same stream and keeps its shard
        self.sampler = exp.data.batch_sampler(self.cfg.train.batch_size, self.cfg.seed + BATCH_SEED_OFFSET,
                                              exp.device, rank=distributed.rank(), world=distributed.world_size())
        self.step = 0
        self._signal: int | None = None

    @property
    def run_dir(self) -> Path:
        return self.files.path

    @property
    def checkpoint_path(self) -> Path:
        return self.files.checkpoint_path

    # ------------------------------------------------------------------ state
    def state(self) -> dict[str, Any]:
        g = self.exp.game
        return {
            "step": self.step,
            "config": self.cfg.to_yaml(),
            "signature": json.dumps(game_signature(self.cfg)),
            "sample_shape": list(self.exp.data.sample_shape),
            "generator": g.generator.state_dict(),
            "discriminator": g.discriminator.state_dict() if g.discriminator is not None else {},
            "ema": self.exp.ema.state_dict(),
            "rule": self.exp.rule.state_dict(),
            "sampler": self.sampler.state_dict(),
            "rng": rng_state(),
        }

    def save_checkpoint(self) -> None:
        """Rank 0 writes (every rank holds the same state, distributed.check_in_sync)."""
        if distributed.is_main():
            save_checkpoint(self.checkpoint_path, self.state())

    def restore(self, path: Path) -> None:
        """Everything a checkpoint holds: players, rule, batch order, RNG, step. Data-parallel:
        rank 0 reads the file and hands its state to every rank (no shared file system needed)."""
        state = distributed.on_main(lambda: load_checkpoint(path))
        check_signature(json.loads(state["signature"]), game_signature(self.cfg), path)
        restore_players(state, self.exp.game, self.exp.ema, path)
        try:
            self.exp.rule.load_state_dict(state["rule"])
        except (RuntimeError, KeyError, ValueError) as exc:
            from ..errors import CheckpointError

            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CheckpointError(f"checkpoint {str(path)!r} does not fit this update rule: {first}") from None
        self.sampler.load_state_dict(state["sampler"])
        set_rng_state(state["rng"])
        self.step = int(state["step"])

    # ------------------------------------------------------------------ loop
    def fit(self, resume: bool = False, restored: bool = False) -> dict[str, Any]:
        """Train to ``train.steps``. ``resume`` restores the checkpoint first; ``restored`` says
        the caller already did (:meth:`restore`, to verify it before writing anything)."""
        if resume and not restored:
            self.restore(self.checkpoint_path)
        if resume or restored:
            if distributed.is_main():
                self.files.truncate_metrics_after(self.step)
        else:
            set_rng_state(self.exp.init_rng)  # a fresh run continues the stream of its initialisation
        total = self.cfg.train.steps
        callbacks = default_callbacks(self, self.evaluate, self.progress_enabled,
                                      self.cfg.seed + EVAL_SEED_OFFSET) + self.extra_callbacks
        start, first_step = time.perf_counter(), self.step
        try:
            with self._signals_stop_the_loop():
                while self.step < total:
                    stats = self.exp.rule.step(self.exp.game, self.sampler.next)
                    # data-parallel: global-batch losses and a stop that every rank agrees on
                    last = self.step + 1 == total
                    stats, stop = distributed.agree_on_step(
                        stats, self._signal, check_signal=last or self._writes_at(self.step + 1))
                    self.step += 1
                    for callback in callbacks:
                        if callback.due(self.step, last):
                            callback(self, stats)
                    if stop is not None and not last:
                        self._signal = stop
                        self._stop_for_signal()
        finally:
            for callback in callbacks:
                callback.close()
        elapsed = time.perf_counter() - start
        rate = (self.step - first_step) / elapsed if elapsed > 0 else float("nan")
        return {"step": self.step, "seconds": elapsed, "steps_per_second": rate}

    def _writes_at(self, step: int) -> bool:
        """Steps that log or checkpoint: where data-parallel ranks agree on a pending signal."""
        train = self.cfg.train
        return step % train.log_every == 0 or step % train.checkpoint_every == 0

    def _stop_for_signal(self) -> None:
        self.save_checkpoint()
        name = signal.Signals(self._signal).name
        raise Interrupted(
            f"{name} at step {self.step}: checkpoint written; continue with "
            f"occamgan train --out {self.files.path} --resume", signum=self._signal)

    @contextlib.contextmanager
    def _signals_stop_the_loop(self) -> Iterator[None]:
        """SIGINT/SIGTERM set a flag that the loop reads after the step in progress (a checkpoint
        of a half-done step would not resume exactly). Only the main thread can set handlers."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def stop(signum: int, frame: Any) -> None:
            if self._signal is not None:  # a second Ctrl-C: stop now, the last checkpoint stands
                raise KeyboardInterrupt
            self._signal = signum

        previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
