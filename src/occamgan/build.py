"""Builders: config -> registries -> data, Game, UpdateRule, EMA (the one-way data flow of the
architecture note)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .config import Config
from .data.base import DataSource, build_data
from .errors import ConfigError
from .game import Game
from .models.base import build_models
from .plugins import GENERATOR_LOSSES, OBJECTIVES, UPDATE_RULES
from .regularizers import build_regularizers
from .train.ema import GeneratorEMA
from .update_rules.base import UpdateRule


@dataclass
class Experiment:
    cfg: Config
    data: DataSource
    game: Game
    rule: UpdateRule
    ema: GeneratorEMA
    device: torch.device


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"config key train.device: unknown device {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"config key train.device: {name!r} requested but CUDA is not available")
    return device


def build_game(cfg: Config, data: DataSource, device: torch.device) -> Game:
    objective = OBJECTIVES.get(cfg.objective.name)(cfg.objective)
    models = build_models(cfg, data.sample_shape, objective.has_discriminator)
    gen_loss = None
    if cfg.objective.generator_loss != "default":
        if not objective.has_discriminator:
            raise ConfigError(f"config key objective.generator_loss: objective {cfg.objective.name!r} has no critic")
        gen_loss = GENERATOR_LOSSES.get(cfg.objective.generator_loss)(cfg.objective)
    game = Game(
        models.generator, models.discriminator, objective, cfg.model.latent_dim,
        generator_loss=gen_loss, regularizers=build_regularizers(cfg.regularizers),
        n_mcd=cfg.train.n_mcd, amp=cfg.train.amp,
    )
    return game.to(device)


def build_experiment(cfg: Config) -> Experiment:
    """Everything a run needs, with parameters initialised from ``cfg.seed``."""
    device = resolve_device(cfg.train.device)
    data = build_data(cfg)
    torch.manual_seed(cfg.seed)
    game = build_game(cfg, data, device)
    rule_factory = UPDATE_RULES.get(cfg.train.update)
    if getattr(rule_factory, "requires_zero_sum", False) and not game.zero_sum:
        raise ConfigError(
            f"config key train.update: {cfg.train.update!r} needs a zero-sum game, but objective "
            f"{cfg.objective.name!r} with generator loss {cfg.objective.generator_loss!r} is general-sum"
        )
    rule = rule_factory(game, cfg.train)
    ema = GeneratorEMA(game.generator, cfg.train.ema_decay, cfg.train.ema_start)
    return Experiment(cfg, data, game, rule, ema, device)
