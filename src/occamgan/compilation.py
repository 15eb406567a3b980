"""``train.compile``: torch.compile of the players' forwards, and what the compiler reports.

``torch.compile(module)`` wraps a module without changing it: the Game keeps the eager
generator and critic (their parameters, state_dict keys, checkpoints and optimiser state are
unchanged, so a compiled run resumes uncompiled and the other way round) and calls the compiled
wrappers for the forwards that are differentiated once. AOT autograd cannot differentiate a
compiled graph twice ("does not currently support double backward"), so the forwards whose
derivative is differentiated again run eager, as they run in float32 under ``train.amp``
(game.py, "precision"): the critic at gradient-penalty points, the generator step under
gradient regularisation, every step of the competitive rules, and evaluation.

Dynamo splits a forward into several graphs where it meets code it cannot trace (a graph
break); each costs a round trip through Python. The run records how many it met and why
(summary.json ``compile``), from ``torch._dynamo``'s own counters.
"""
from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor, nn

from .errors import ConfigError, TrainingError
from .models import running_stats

#: graph-break reasons kept in the record (the most frequent first)
MAX_REASONS = 5


def available_backends() -> list[str]:
    import torch._dynamo

    return sorted(set(torch._dynamo.list_backends(exclude_tags=())) | {"inductor"})


def check_backend(backend: str) -> None:
    """Refuse an unknown compiler backend before anything is built (one line, the key named)."""
    known = available_backends()
    if backend not in known:
        raise ConfigError(f"config key train.compile_backend: unknown backend {backend!r} (torch has: "
                          f"{', '.join(known)})")


class CompiledPlayer:
    """A compiled player's forward; a failure of the compiler backend (no C++ toolchain, an
    unsupported operator) becomes one line that names the switch to turn off."""

    def __init__(self, net: nn.Module, backend: str, options: dict[str, Any], what: str):
        self.compiled = torch.compile(net, **options)
        self.backend, self.what = backend, what

    def __call__(self, x: Tensor) -> Tensor:
        import torch._dynamo.exc

        try:
            if not running_stats.frozen():
                return self.compiled(x)
            with warnings.catch_warnings():
                # SAM's probe pass holds a global pre-hook (models/running_stats.py); for a player
                # without BatchNorm it is a no-op, so torch's warning that it fires twice is moot
                warnings.filterwarnings("ignore", message=r"Using `torch.compile\(module\)` when there are global hooks")
                return self.compiled(x)
        except torch._dynamo.exc.BackendCompilerFailed as exc:
            cause = getattr(exc, "inner_exception", None) or exc
            text = str(cause).strip()
            first = f"{type(cause).__name__}: {text.splitlines()[0]}" if text else type(cause).__name__
            raise TrainingError(f"train.compile: backend {self.backend!r} failed to compile the {self.what} ({first}); "
                                "train with train.compile=false, or train.compile_backend=aot_eager to check "
                                "the tracing without a compiler") from None


def compile_module(net: nn.Module, backend: str, mode: str, what: str = "player") -> CompiledPlayer:
    """``torch.compile(net)`` with the run's backend and mode (``net`` itself is unchanged)."""
    check_backend(backend)
    options: dict[str, Any] = {"backend": backend}
    if mode != "default":  # modes are inductor's; other backends take none
        if backend != "inductor":
            raise ConfigError(f"config key train.compile_mode: mode {mode!r} needs train.compile_backend: inductor "
                              f"(got {backend!r})")
        options["mode"] = mode
    return CompiledPlayer(net, backend, options, what)


def reset_counters() -> None:
    """Count graph breaks from now on (a run's record covers that run only). Dynamo's caches
    are dropped too: code compiled for earlier players of this process (same forward code,
    other modules) would otherwise be reused without being traced, and its breaks not counted."""
    import torch._dynamo

    torch._dynamo.reset()


def compile_record(backend: str, mode: str) -> dict[str, Any]:
    """What the compiler met since :func:`reset_counters`: graph breaks and their reasons."""
    import torch._dynamo.utils

    breaks = torch._dynamo.utils.counters["graph_break"]
    reasons = [f"{reason.strip().splitlines()[0]} (x{count})" for reason, count in breaks.most_common(MAX_REASONS)]
    return {"backend": backend, "mode": mode, "graph_breaks": int(sum(breaks.values())), "reasons": reasons,
            "torch": torch.__version__}
