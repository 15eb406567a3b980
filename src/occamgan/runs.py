"""A trained run read back from its directory: config, Game (G and D), the generator EMA and the
step, restored from ``checkpoints/last.pt`` without building a Trainer, an optimiser or a batch
sampler.

Loading has no side effects: the caller's global torch RNG is left as it was, the training set is
not copied to the device (it is not even read unless a score asks for it, for checkpoints that
record their sample shape), and nothing in the directory is written. Run directories written by
older versions load too: their config is reduced to the keys today's plug-ins read
(:func:`occamgan.config.prune_to_schema`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .build import build_players, resolve_device
from .config import Config, build_config, prune_to_schema, read_config_tree
from .data.base import DataSource, build_data
from .errors import CheckpointError, ConfigError, RunDirError
from .game import Game
from .sampling import sample_generator
from .train.checkpoint import check_signature, game_signature, load_checkpoint, restore_players
from .train.ema import GeneratorEMA
from .train.run_dir import RunDir


@dataclass
class LoadedRun:
    """A trained run: its config, Game, generator EMA and step; ``data`` is built on first use."""

    run_dir: Path
    config: Config
    game: Game
    ema: GeneratorEMA
    step: int
    device: torch.device
    _data: DataSource | None = field(default=None, repr=False)
    #: the training batch sampler's state at the checkpoint (its last batch: metrics/sharpness)
    sampler_state: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def data(self) -> DataSource:
        """The run's training data (read on first use, kept on the CPU)."""
        if self._data is None:
            self._data = build_data(self.config)
        return self._data

    @property
    def generator(self) -> nn.Module:
        """The EMA generator (what the run samples and is scored with by default)."""
        return self.ema.generator

    @property
    def latent_dim(self) -> int:
        return self.game.latent_dim

    @property
    def files(self) -> RunDir:
        return RunDir(self.run_dir)

    def generator_for(self, use_ema: bool = True) -> nn.Module:
        return self.ema.generator if use_ema else self.game.generator

    def sample(self, n: int, seed: int = 0, use_ema: bool = True, mc_dropout: bool = False) -> Tensor:
        """n samples in eval mode; ``mc_dropout`` keeps dropout active (fresh mask per sample)
        with normalisation layers in eval mode."""
        return sample_generator(self.generator_for(use_ema), n, self.latent_dim, seed=seed, mc_dropout=mc_dropout,
                                device=self.device)


def read_run_config(run: RunDir) -> Config:
    """The run's config.yaml, validated against today's schema (older runs' inapplicable keys are
    dropped: the code that wrote them ignored them too)."""
    if not run.config_path.is_file():
        raise RunDirError(f"{str(run.path)!r} is not a run directory (no {run.config_path.name})")
    try:
        return build_config(prune_to_schema(read_config_tree(run.config_path)))
    except ConfigError as exc:
        raise RunDirError(f"{str(run.path)!r}: {exc}") from None


def load_run(path: str | os.PathLike, device: str | torch.device | None = None) -> LoadedRun:
    """Restore a run directory (its config.yaml and checkpoints/last.pt) for sampling and scoring."""
    run = RunDir(path)
    cfg = read_run_config(run)
    state = load_checkpoint(run.checkpoint_path)
    check_signature(_saved_signature(state, run.checkpoint_path), game_signature(cfg), run.checkpoint_path)
    device = torch.device(device) if device is not None else resolve_device(cfg.train.device)
    data = None
    shape = state.get("sample_shape")
    if shape is None:  # checkpoints before the sample shape was recorded: ask the data
        data = build_data(cfg)
        shape = data.sample_shape
    players = build_players(cfg, tuple(int(s) for s in shape), device)
    restore_players(state, players.game, players.ema, run.checkpoint_path)
    return LoadedRun(run.path, cfg, players.game, players.ema, int(state["step"]), device, data,
                     sampler_state=state.get("sampler"))


def _saved_signature(state: dict[str, Any], path: Path) -> dict[str, Any]:
    import json

    try:
        return json.loads(state["signature"])
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(f"checkpoint {str(path)!r} has no readable game signature") from None


def as_loaded_run(run: LoadedRun | str | os.PathLike) -> LoadedRun:
    return run if isinstance(run, LoadedRun) else load_run(run)
