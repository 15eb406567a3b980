"""Builders: config -> registries -> data, Game, UpdateRule, EMA (the one-way data flow of the
architecture note). Building has no side effect on the caller's random streams: the networks are
initialised from ``cfg.seed`` inside a forked RNG state, and the RNG state right after the
initialisation is handed to the Trainer, which continues a fresh run from it (as a run always has)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from . import distributed
from .config import Config
from .data.base import DataSource, build_data
from .errors import ConfigError
from .game import Game
from .models.base import build_models
from .plugins import GENERATOR_LOSSES, OBJECTIVES, UPDATE_RULES
from .regularizers import build_regularizers
from .train.checkpoint import rng_state
from .train.ema import GeneratorEMA
from .update_rules.base import UpdateRule


@dataclass
class Players:
    """The trained things of a run: the Game (G, D, objective, regularisers) and the generator EMA."""

    game: Game
    ema: GeneratorEMA
    #: the global RNG state right after the networks were initialised from cfg.seed
    init_rng: dict[str, Any]


@dataclass
class Experiment:
    cfg: Config
    data: DataSource
    game: Game
    rule: UpdateRule
    ema: GeneratorEMA
    device: torch.device
    init_rng: dict[str, Any]


def resolve_device(name: str) -> torch.device:
    """The device of ``train.device``; a data-parallel rank's "cuda" is ``cuda:LOCAL_RANK``."""
    if name == "auto":
        return distributed.local_device(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"config key train.device: unknown device {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"config key train.device: {name!r} requested but CUDA is not available")
    return distributed.local_device(device)


def build_game(cfg: Config, sample_shape: tuple[int, ...], device: torch.device) -> Game:
    objective = OBJECTIVES.get(cfg.objective.name)(cfg.objective)
    models = build_models(cfg, sample_shape, objective.has_discriminator)
    loss_section = cfg.objective.generator_loss
    gen_loss = None
    if loss_section.name != "default":
        if not objective.has_discriminator:
            raise ConfigError(f"config key objective.generator_loss: objective {cfg.objective.name!r} has no critic")
        gen_loss = GENERATOR_LOSSES.get(loss_section.name)(loss_section)
    regularizers = build_regularizers(cfg.regularizers)
    for reg in regularizers:
        if reg.needs_discriminator and not objective.has_discriminator:
            raise ConfigError(f"config key regularizers: {type(reg).__name__} penalises the critic, but objective "
                              f"{cfg.objective.name!r} has none")
    game = Game(
        models.generator, models.discriminator, objective, cfg.model.latent_dim,
        generator_loss=gen_loss, regularizers=regularizers,
        n_mcd=cfg.train.n_mcd, amp=cfg.train.amp,
    )
    return game.to(device)


#: bytes per parameter while training: weights, gradient, two Adam moments and the EMA copy (float32)
TRAINING_BYTES_PER_PARAMETER = 5 * 4


def check_model_fits(cfg: Config, sample_shape: tuple[int, ...], device: torch.device) -> int:
    """Count the networks' parameters without allocating them (on the meta device) and refuse,
    in one line, a model whose weights and optimiser state alone exceed the memory available."""
    try:
        with torch.device("meta"):
            models = build_models(cfg, sample_shape, OBJECTIVES.get(cfg.objective.name)(cfg.objective).has_discriminator)
    except (RuntimeError, NotImplementedError, TypeError):  # a model that cannot be built on meta: not checked
        return 0
    count = sum(p.numel() for m in (models.generator, models.discriminator) if m is not None for p in m.parameters())
    need, free = count * TRAINING_BYTES_PER_PARAMETER, available_bytes(device)
    if free is not None and need > free:
        raise ConfigError(f"config section model: the generator and critic have {count:,} parameters; training them "
                          f"needs at least {need / 2**30:.1f} GiB, more than the {free / 2**30:.1f} GiB available on "
                          f"{device}; make the model smaller")
    return count


def available_bytes(device: torch.device) -> int | None:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def build_players(cfg: Config, sample_shape: tuple[int, ...], device: torch.device) -> Players:
    """Game and EMA with parameters initialised from ``cfg.seed``; the caller's RNG is untouched."""
    check_model_fits(cfg, sample_shape, device)
    cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(cfg.seed)
        game = build_game(cfg, sample_shape, device)
        ema = GeneratorEMA(game.generator, cfg.train.ema_decay, cfg.train.ema_start, buffers=cfg.train.ema_buffers)
        after_init = rng_state()
    return Players(game, ema, after_init)


def check_rule_fits(cfg: Config, game: Game) -> None:
    """The one place where an update rule's needs are checked against the game."""
    rule_class = UPDATE_RULES.get(cfg.train.update)
    if getattr(rule_class, "requires_discriminator", False) and not game.has_discriminator:
        raise ConfigError(f"config key train.update: {cfg.train.update!r} needs a critic, but objective "
                          f"{cfg.objective.name!r} has none (use 'alternating')")
    if getattr(rule_class, "requires_zero_sum", False) and not game.zero_sum:
        penalties = [type(r).__name__ for r in game.regularizers if r.penalises_generator]
        why = (f"regulariser {', '.join(penalties)} adds a term to L_G only" if penalties else
               f"objective {cfg.objective.name!r} with generator loss {cfg.objective.generator_loss.name!r} is general-sum")
        raise ConfigError(f"config key train.update: {cfg.train.update!r} needs a zero-sum game "
                          f"(grad_G L_G = -grad_G L_D), but {why}; use train.update='gacgd'")


def build_experiment(cfg: Config) -> Experiment:
    """Everything a run needs, with parameters initialised from ``cfg.seed``."""
    device = resolve_device(cfg.train.device)
    data = _build_data_once_per_node(cfg)
    players = build_players(cfg, data.sample_shape, device)
    check_rule_fits(cfg, players.game)
    if distributed.is_distributed():
        _make_data_parallel(cfg, players.game, len(data))
    _fast_paths(cfg, players.game, device)
    rule = UPDATE_RULES.get(cfg.train.update)(players.game, cfg.train)
    return Experiment(cfg, data, players.game, rule, players.ema, device, players.init_rng)


def _build_data_once_per_node(cfg: Config) -> DataSource:
    """Data-parallel: the first rank of each node builds (downloads, caches) the data set
    before the others read it, so that no two processes write the same cache files."""
    if not distributed.is_distributed():
        return build_data(cfg)
    first = distributed.local_rank() == 0
    data = build_data(cfg) if first else None
    distributed.barrier()
    return data if first else build_data(cfg)


def _make_data_parallel(cfg: Config, game: Game, n_data: int) -> None:
    """The global batch splits evenly over the ranks; BatchNorm becomes SyncBatchNorm
    (``train.sync_bn``); dropout layers draw their masks per rank (distributed.py)."""
    distributed.check_batch_size(min(cfg.train.batch_size, n_data))
    for net in (game.generator, game.discriminator):
        if net is None:
            continue
        if cfg.train.sync_bn:
            distributed.convert_sync_batchnorm(net)
        distributed.decorrelate_dropout(net)


def _fast_paths(cfg: Config, game: Game, device: torch.device) -> None:
    """The speed switches of the train section that leave the results (up to rounding) as they are."""
    if cfg.train.cudnn_benchmark and device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    if cfg.train.channels_last:
        for net in (game.generator, game.discriminator):
            if net is not None and any(p.dim() == 4 for p in net.parameters()):
                net.to(memory_format=torch.channels_last)  # in place: optimisers keep their tensors
    if cfg.train.compile:  # last: compile the players as they will run (layout, SyncBatchNorm)
        game.compile_players(cfg.train.compile_backend, cfg.train.compile_mode)
