"""Exponential moving average of the generator weights (and buffers), started at a given step;
the EMA generator is used for sampling and evaluation (methods.md section 2; Yazici et al. 2019,
"The unusual effectiveness of averaging in GAN training").

Built on ``torch.optim.swa_utils.AveragedModel`` with ``get_ema_multi_avg_fn``:
psi_ema <- decay * psi_ema + (1 - decay) * psi. Before ``start`` the average simply tracks the
current weights, so the EMA equals G until averaging begins.

The per-step update does what ``AveragedModel.update_parameters`` does (one ``_foreach_lerp_``
over the floating-point tensors, the same formula for the others, then ``n_averaged += 1``) on
tensor lists built once: rebuilding them every step (four module traversals and a regrouping)
cost more than the averaging itself for the paper's toy generators. Parameters and buffers are
updated in place by optimisers and ``load_state_dict``, so the cached lists stay valid.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


class GeneratorEMA:
    def __init__(self, generator: nn.Module, decay: float, start: int):
        self.start, self.decay = start, decay
        self.model = AveragedModel(generator, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
        self.model.requires_grad_(False)
        self._source: nn.Module | None = None
        self._floats: tuple[list[Tensor], list[Tensor]] = ([], [])
        self._others: list[tuple[Tensor, Tensor]] = []

    @torch.no_grad()
    def update(self, generator: nn.Module, step: int) -> None:
        """Call after optimiser step number ``step`` (1-based)."""
        if step <= self.start:
            self.model.module.load_state_dict(generator.state_dict())
            self.model.n_averaged.fill_(1)
        elif self.model.n_averaged.item() == 0:  # first average: a copy
            self.model.update_parameters(generator)
        else:
            self._average(generator)

    def _average(self, generator: nn.Module) -> None:
        if generator is not self._source:
            self._pair_tensors(generator)
        if self._floats[0]:
            torch._foreach_lerp_(self._floats[0], self._floats[1], 1 - self.decay)
        for p_ema, p_model in self._others:
            p_ema.copy_(p_ema * self.decay + p_model * (1 - self.decay))
        self.model.n_averaged += 1

    def _pair_tensors(self, generator: nn.Module) -> None:
        ema = [t.detach() for t in (*self.model.module.parameters(), *self.model.module.buffers())]
        src = [t.detach() for t in (*generator.parameters(), *generator.buffers())]
        if len(ema) != len(src) or any(e.device != s.device or e.shape != s.shape for e, s in zip(ema, src)):
            raise ValueError("the EMA and the generator have different tensors")
        floats = [(e, s) for e, s in zip(ema, src) if e.is_floating_point() or e.is_complex()]
        self._floats = ([e for e, _ in floats], [s for _, s in floats])
        self._others = [(e, s) for e, s in zip(ema, src) if not (e.is_floating_point() or e.is_complex())]
        self._source = generator

    @property
    def generator(self) -> nn.Module:
        return self.model.module

    def state_dict(self) -> dict[str, Any]:
        return self.model.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state)
