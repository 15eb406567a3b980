"""Probe passes that leave normalisation running statistics (BatchNorm) as they were.

SAM's second pass evaluates the loss at the perturbed weights psi + e: a probe, not a new batch,
so running means, variances and batch counters must not move (update_rules/sam.py). Inside
:func:`running_stats_frozen` a global forward pre-hook snapshots the running buffers of every
normalisation layer in training mode that runs, whatever module it belongs to, and restores
them afterwards.

A global hook fires only in eager code: a torch.compile'd forward was traced without it. So the
Game runs a player that tracks running statistics eager while :func:`frozen` is true
(game.py, "fast paths").
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch
from torch import Tensor, nn

_depth = 0


def frozen() -> bool:
    """True inside :func:`running_stats_frozen`."""
    return _depth > 0


def _tracks_running_stats(module: nn.Module) -> bool:
    return (
        isinstance(module, nn.modules.batchnorm._NormBase)
        and module.training
        and module.track_running_stats
        and module.running_mean is not None
    )


def tracks_running_stats(module: nn.Module) -> bool:
    """Whether a forward of ``module`` (now, in its current mode) updates running statistics."""
    return any(_tracks_running_stats(m) for m in module.modules())


@contextlib.contextmanager
def running_stats_frozen() -> Iterator[None]:
    """Normalisation layers that run inside the block keep their running statistics
    (running mean/var and the batch counter), whatever module they belong to."""
    global _depth
    saved: dict[nn.Module, list[tuple[Tensor, Tensor]]] = {}

    def snapshot(module: nn.Module, args: Any) -> None:
        if module not in saved and _tracks_running_stats(module):
            buffers = [b for b in (module.running_mean, module.running_var, module.num_batches_tracked) if b is not None]
            saved[module] = [(b, b.detach().clone()) for b in buffers]

    handle = nn.modules.module.register_module_forward_pre_hook(snapshot)
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        handle.remove()
        with torch.no_grad():
            for pairs in saved.values():
                for buffer, value in pairs:
                    buffer.copy_(value)
