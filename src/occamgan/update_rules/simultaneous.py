"""Simultaneous gradient descent (SimGDA): both players step from the same point, each on its
own loss, with the same per-player Adam and LR schedule as the alternating rule (Mescheder et al.
2017, "The numerics of GANs", Sec. 2)."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .. import distributed
from ..game import Game
from .base import UPDATE_RULES, NextBatch, UpdateRule
from .optimizers import AdamParams, build_adam, build_lr_scheduler, restore_player


class Simultaneous(UpdateRule):
    def __init__(self, game: Game, cfg: Any):
        self.cfg = cfg
        self.players = [("g", game.generator_parameters(), cfg.lr_g)]
        if game.has_discriminator:
            self.players.append(("d", game.discriminator_parameters(), cfg.lr_d))
        self.opts = {n: build_adam(ps, lr, cfg, sam=False) for n, ps, lr in self.players}
        self.scheds = {n: build_lr_scheduler(o, cfg) for n, o in self.opts.items()}

    def step(self, game: Game, next_batch: NextBatch) -> dict[str, Tensor | float]:
        real = next_batch()
        loss_d, loss_g = game.losses(real, distributed.sample_latent(game, real.shape[0]))
        losses = {"g": loss_g, "d": loss_d}
        grads = {}
        for name, params, _ in self.players:
            grads[name] = torch.autograd.grad(losses[name], params, retain_graph=True, allow_unused=True)
        distributed.average_([g for name in grads for g in grads[name]])  # data-parallel: global-batch gradients
        stats: dict[str, Tensor | float] = {"loss_g": loss_g.detach(), "loss_d": loss_d.detach()}
        for name, params, _ in self.players:
            for p, g in zip(params, grads[name]):
                p.grad = torch.zeros_like(p) if g is None else g
            self.opts[name].step()
            self.scheds[name].step()
            stats[f"lr_{name}"] = self.opts[name].param_groups[0]["lr"]
        game.after_discriminator_step()
        return stats

    def state_dict(self) -> dict[str, Any]:
        return {f"opt_{n}": o.state_dict() for n, o in self.opts.items()} | {
            f"sched_{n}": s.state_dict() for n, s in self.scheds.items()
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for n, _, lr in self.players:
            restore_player(self.opts[n], self.scheds[n], {"opt": state[f"opt_{n}"], "sched": state[f"sched_{n}"]}, lr,
                           self.cfg)


UPDATE_RULES.add("simultaneous", Simultaneous, params=AdamParams)
