"""Exponential moving average of the generator weights (and buffers), started at a given step;
the EMA generator is used for sampling and evaluation (docs/methods.md section 2; Yazici et al. 2019,
"The unusual effectiveness of averaging in GAN training").

Built on ``torch.optim.swa_utils.AveragedModel`` with ``get_ema_multi_avg_fn``:
psi_ema <- decay * psi_ema + (1 - decay) * psi. Before ``start`` the average simply tracks the
current weights, so the EMA equals G until averaging begins.

Buffers (BatchNorm running statistics), ``train.ema_buffers``:

- ``"average"`` (default): ``AveragedModel(use_buffers=True)``: the running means and variances
  are averaged with the same decay as the weights (integer buffers such as
  ``num_batches_tracked`` by the same formula, truncated), so the EMA generator's normalisation
  statistics are an average over the same window as its weights;
- ``"copy"``: the authors' EMA (their ``ema.py``) shadows the parameters only and evaluates them
  inside the live generator, whose buffers are its current running statistics: here the
  buffers are copied from the generator at every update while the weights are averaged.

The two agree for generators without buffers (the toy MLPs) and before ``start``.

The per-step update does what ``AveragedModel.update_parameters`` does (one ``_foreach_lerp_``
over the floating-point tensors, the same formula for the others, then ``n_averaged += 1``) on
tensor lists built once: rebuilding them every step (four module traversals and a regrouping)
cost more than the averaging itself for the paper's toy generators. Parameters and buffers are
updated in place by optimisers and ``load_state_dict``, so the cached lists stay valid.
"""
from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


#: how the EMA treats buffers (BatchNorm statistics): averaged like the weights, or copied
BUFFER_MODES = ("average", "copy")


class GeneratorEMA:
    def __init__(self, generator: nn.Module, decay: float, start: int,
                 buffers: Literal["average", "copy"] = "average"):
        if buffers not in BUFFER_MODES:
            raise ValueError(f"buffers must be one of {BUFFER_MODES}, got {buffers!r}")
        self.start, self.decay, self.buffers = start, decay, buffers
        self.model = AveragedModel(generator, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
        self.model.requires_grad_(False)
        self._source: nn.Module | None = None
        self._floats: tuple[list[Tensor], list[Tensor]] = ([], [])
        self._others: list[tuple[Tensor, Tensor]] = []
        self._copied: tuple[list[Tensor], list[Tensor]] = ([], [])
        #: mirrors ``n_averaged > 0`` on the host, so that no step reads the device counter
        self._averaging = False

    @torch.no_grad()
    def update(self, generator: nn.Module, step: int) -> None:
        """Call after optimiser step number ``step`` (1-based)."""
        if step <= self.start:
            self.model.module.load_state_dict(generator.state_dict())
            self.model.n_averaged.fill_(1)
            self._averaging = True
        elif not self._averaging:  # first average: a copy
            self.model.update_parameters(generator)
            self._averaging = True
        else:
            self._average(generator)

    def _average(self, generator: nn.Module) -> None:
        if generator is not self._source:
            self._pair_tensors(generator)
        if self._floats[0]:
            torch._foreach_lerp_(self._floats[0], self._floats[1], 1 - self.decay)
        for p_ema, p_model in self._others:
            p_ema.copy_(p_ema * self.decay + p_model * (1 - self.decay))
        if self._copied[0]:
            torch._foreach_copy_(self._copied[0], self._copied[1])
        self.model.n_averaged += 1

    def _pair_tensors(self, generator: nn.Module) -> None:
        pairs = {}
        for kind, ema_t, src_t in (("parameters", self.model.module.parameters(), generator.parameters()),
                                   ("buffers", self.model.module.buffers(), generator.buffers())):
            ema, src = [t.detach() for t in ema_t], [t.detach() for t in src_t]
            if len(ema) != len(src) or any(e.device != s.device or e.shape != s.shape for e, s in zip(ema, src)):
                raise ValueError("the EMA and the generator have different tensors")
            pairs[kind] = list(zip(ema, src))
        averaged = pairs["parameters"] + (pairs["buffers"] if self.buffers == "average" else [])
        copied = pairs["buffers"] if self.buffers == "copy" else []
        floats = [(e, s) for e, s in averaged if e.is_floating_point() or e.is_complex()]
        self._floats = ([e for e, _ in floats], [s for _, s in floats])
        self._others = [(e, s) for e, s in averaged if not (e.is_floating_point() or e.is_complex())]
        self._copied = ([e for e, _ in copied], [s for _, s in copied])
        self._source = generator

    @property
    def generator(self) -> nn.Module:
        return self.model.module

    def state_dict(self) -> dict[str, Any]:
        return self.model.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state)
        self._averaging = bool(self.model.n_averaged.item() > 0)  # once, at load time
