"""Exponential moving average of the generator weights (and buffers), started at a given step;
the EMA generator is used for sampling and evaluation (methods.md section 2; Yazici et al. 2019,
"The unusual effectiveness of averaging in GAN training").

Built on ``torch.optim.swa_utils.AveragedModel`` with ``get_ema_multi_avg_fn``:
psi_ema <- decay * psi_ema + (1 - decay) * psi. Before ``start`` the average simply tracks the
current weights, so the EMA equals G until averaging begins.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


class GeneratorEMA:
    def __init__(self, generator: nn.Module, decay: float, start: int):
        self.start = start
        self.model = AveragedModel(generator, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
        self.model.requires_grad_(False)

    @torch.no_grad()
    def update(self, generator: nn.Module, step: int) -> None:
        """Call after optimiser step number ``step`` (1-based)."""
        if step <= self.start:
            self.model.module.load_state_dict(generator.state_dict())
            self.model.n_averaged.fill_(1)
        else:
            self.model.update_parameters(generator)

    @property
    def generator(self) -> nn.Module:
        return self.model.module

    def state_dict(self) -> dict[str, Any]:
        return self.model.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state)
