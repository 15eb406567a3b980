"""The metric registry: every score of a generator is a registered function of an
:class:`EvalContext` that returns a flat dict of floats, plus ``protocol_<what>`` dicts that record
how the numbers were obtained (StyleGAN2-ADA's metric_main.py: the protocol is part of the record).

A metric declares the knobs it reads (a :class:`~occamgan.params.Params` model, gathered into the
``eval`` config section) and, optionally, the data it applies to by default (toy scores apply to
toy data; image metrics and sharpness are chosen in ``eval.metrics``). Metrics are pure: they see
the context's sampler, data, game and settings, never a run directory.

Names may also be resolved by a *family* (e.g. ``fid_<network>`` for any feature network), so a
new feature network needs no registration of its own metrics.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import Tensor, nn

from ..params import Params
from ..registry import Registry, UnknownNameError

#: (n, seed) -> n samples (images in [-1, 1] or points), on the generator's device
Sampler = Callable[[int, int], Tensor]


@dataclass
class EvalContext:
    """What a metric may look at. ``params`` is the ``eval`` config section (every metric's knobs);
    ``data`` the training data; ``reference`` what generated samples are compared with (default:
    ``data``); ``sampler`` draws from ``generator`` (the EMA or raw generator, ``label`` says which);
    ``game`` is the trained Game when one is at hand (sharpness, evidence)."""

    params: Any
    seed: int
    n: int
    #: the run's own seed (toy scores subsample with it, as they always have)
    run_seed: int = 0
    sampler: Sampler | None = None
    label: str = "ema"
    data: Any = None
    reference: Any = None
    game: Any = None
    generator: nn.Module | None = None
    latent_dim: int | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    #: points per training batch (sharpness batches are training batches)
    train_batch_size: int = 256
    #: given images to evaluate instead of a sampler's (then ``available`` is their count)
    images: Tensor | None = None
    #: the number of samples the sampler can give (None: unlimited; given images: their count)
    available: int | None = None
    #: reuse reference statistics cached on disk (metrics/reference.py)
    use_reference_cache: bool = True
    #: (split, n) -> n held-out data points: "test" for evaluation, "validation" for fitting
    #: (occamgan.model_evidence.held_out_data says what they are for each kind of data)
    held_out: Callable[[str, int], Tensor] | None = None
    #: shared by the metrics of one evaluation (features of one network, drawn samples)
    cache: dict[Any, Any] = field(default_factory=dict)
    #: the run's last training batch, when it can be rebuilt (the batch sampler's state of a
    #: finished run or checkpoint, in-memory data): None otherwise (metrics/sharpness.py)
    last_training_batch: Callable[[], Tensor | None] | None = None

    def memo(self, key: Any, compute: Callable[[], Any]) -> Any:
        if key not in self.cache:
            self.cache[key] = compute()
        return self.cache[key]

    def samples(self, n: int | None = None) -> Tensor:
        """``n`` (default ``self.n``) samples with the evaluation seed, drawn once per evaluation."""
        n = self.n if n is None else n
        if self.sampler is None:
            raise ValueError("this evaluation has no generator to sample from")
        return self.memo(("samples", n), lambda: self.sampler(n, self.seed))

    @property
    def reference_data(self) -> Any:
        return self.reference if self.reference is not None else self.data


@dataclass(frozen=True)
class Metric:
    """A registered score: ``fn(ctx) -> {value name: float, protocol_<x>: dict}``."""

    name: str
    fn: Callable[[EvalContext], dict[str, Any]]
    #: data it is computed on by default (no need to list it in eval.metrics)
    applies_by_default: Callable[[Any], bool] | None = None
    description: str = ""
    #: ``preflight(eval params, data)``: run before training starts, to fetch or build what the
    #: metric needs or to stop with one line before the run directory exists
    preflight: Callable[[Any, Any], None] | None = None

    def __call__(self, ctx: EvalContext) -> dict[str, Any]:
        return self.fn(ctx)

    def is_default_for(self, data: Any) -> bool:
        return self.applies_by_default is not None and bool(self.applies_by_default(data))


class MetricRegistry(Registry[Metric]):
    """A registry whose names can also be resolved by families (``fid_<network>``)."""

    def __init__(self) -> None:
        super().__init__("metric")
        self._families: list[Callable[[str], Metric | None]] = []

    def add_family(self, resolve: Callable[[str], Metric | None]) -> None:
        self._families.append(resolve)

    def get(self, name: str) -> Metric:
        try:
            return super().get(name)
        except UnknownNameError:
            for resolve in self._families:
                metric = resolve(name)
                if metric is not None:
                    return metric
            raise

    def defaults_for(self, data: Any) -> list[str]:
        return [n for n in self.names() if self.get(n).is_default_for(data)]


METRICS = MetricRegistry()


def register_metric(name: str, params: type[Params] | None = None,
                    applies_by_default: Callable[[Any], bool] | None = None,
                    description: str = "") -> Callable[[Callable[[EvalContext], dict[str, Any]]], Callable]:
    """``@register_metric("sharpness", params=SharpnessParams)`` above ``def score(ctx) -> dict``."""

    def decorate(fn: Callable[[EvalContext], dict[str, Any]]) -> Callable[[EvalContext], dict[str, Any]]:
        METRICS.add(name, Metric(name, fn, applies_by_default, description or (fn.__doc__ or "").strip()),
                    params=params)
        return fn

    return decorate


def metric_values(results: dict[str, Any]) -> dict[str, float]:
    """Only the numbers of an evaluation (drops the protocol entries)."""
    return {k: v for k, v in results.items() if not k.startswith("protocol_")}
