"""Alternating gradient descent (GDA): n_critic critic steps, then one generator step, each
player with its own torch optimiser (Adam; SAM/ASAM-wrapped when ``train.sam_rho > 0``) and the
LR schedule (warm-up, optional decay) (Goodfellow et al. 2014, Alg. 1; Arjovsky et al. 2017, Alg. 1
for n_critic).

Work is not repeated: the critic steps see *detached* fakes (no backward through G), and the
fakes of the last critic step, generated once with their graph, are reused by the generator
step (only the critic is re-evaluated after its update).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .. import distributed
from ..game import Game
from .base import UPDATE_RULES, NextBatch, UpdateRule
from pydantic import Field

from .optimizers import AdamParams, SAMParams, build_adam, build_lr_scheduler, descend, restore_player


class AlternatingParams(AdamParams, SAMParams):
    #: critic steps per generator step
    n_critic: int = Field(1, ge=1)


class Alternating(UpdateRule):
    def __init__(self, game: Game, cfg: Any):
        self.cfg = cfg
        self.n_critic = cfg.n_critic
        sam_g = cfg.sam_players in ("both", "g")
        sam_d = cfg.sam_players in ("both", "d")
        self.opt_g = build_adam(game.generator_parameters(), cfg.lr_g, cfg, sam=sam_g)
        self.sched_g = build_lr_scheduler(self.opt_g, cfg)
        self.opt_d = self.sched_d = None
        if game.has_discriminator:
            self.opt_d = build_adam(game.discriminator_parameters(), cfg.lr_d, cfg, sam=sam_d)
            self.sched_d = build_lr_scheduler(self.opt_d, cfg)

    def step(self, game: Game, next_batch: NextBatch) -> dict[str, Tensor | float]:
        stats: dict[str, Tensor | float] = {}
        if game.has_discriminator:
            real, z, fake = self._critic_steps(game, next_batch, stats)
        else:
            real = next_batch()
            z = distributed.sample_latent(game, real.shape[0])  # the global batch's latents, this rank's shard
            fake = game.generate(z)
        stats["loss_g"] = self._generator_step(game, real, z, fake)
        self.sched_g.step()
        stats["lr_g"] = self.opt_g.param_groups[0]["lr"]
        if self.sched_d is not None:
            self.sched_d.step()
            stats["lr_d"] = self.opt_d.param_groups[0]["lr"]
        return stats

    def _critic_steps(self, game: Game, next_batch: NextBatch, stats: dict) -> tuple[Tensor, Tensor, Tensor]:
        for i in range(self.n_critic):
            real = next_batch()
            z = distributed.sample_latent(game, real.shape[0])  # the global batch's latents, this rank's shard
            if i == self.n_critic - 1:
                fake = game.generate(z)  # kept with its graph for the generator step
                fake_d = fake.detach()
            else:
                with torch.no_grad():
                    fake_d = game.generate(z)
            # z lets MC-dropout passes redraw generator masks (n_mcd > 1)
            stats["loss_d"] = descend(self.opt_d, lambda: game.discriminator_loss(real, fake_d, z))
            game.after_discriminator_step()
        return real, z, fake

    def _generator_step(self, game: Game, real: Tensor, z: Tensor, fake: Tensor) -> Tensor:
        pending = [fake]

        def loss() -> Tensor:
            # first evaluation reuses the critic step's fakes; SAM's second pass regenerates
            return game.generator_loss(real, pending.pop() if pending else game.generate(z), z)

        with game.frozen_discriminator():
            return descend(self.opt_g, loss)

    def state_dict(self) -> dict[str, Any]:
        state = {"opt_g": self.opt_g.state_dict(), "sched_g": self.sched_g.state_dict()}
        if self.opt_d is not None:
            state.update(opt_d=self.opt_d.state_dict(), sched_d=self.sched_d.state_dict())
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        restore_player(self.opt_g, self.sched_g, {"opt": state["opt_g"], "sched": state["sched_g"]}, self.cfg.lr_g,
                       self.cfg)
        if self.opt_d is not None:
            restore_player(self.opt_d, self.sched_d, {"opt": state["opt_d"], "sched": state["sched_d"]},
                           self.cfg.lr_d, self.cfg)


UPDATE_RULES.add("alternating", Alternating, params=AlternatingParams)
