"""Every score of a generator by name, through the metric registry (:mod:`occamgan.metrics.base`).

The end-of-training scores, periodic evaluations (``eval.every``), ``occamgan eval``,
``occamgan sharpness``, sweeps and the Python API all call :func:`run_metrics` on an
:class:`~occamgan.metrics.base.EvalContext` built here from a training Experiment, a loaded run,
given images or a sampler. Which metrics run by default is the registry's answer for the data (toy
scores for toy data) plus ``eval.metrics``; the results are a flat dict of floats plus the
``protocol_<what>`` records, and :meth:`occamgan.train.run_dir.RunDir.record_results` is the one
way they are written into a run.
"""
from __future__ import annotations

import contextlib
import os
from typing import Any, Sequence

import torch
from pydantic import ValidationError
from torch import Tensor

from .config import build_config
from .data.base import DataSource, build_data
from .errors import ConfigError
from .metrics.base import METRICS, EvalContext, metric_values
from .registry import UnknownNameError
from .runs import LoadedRun, load_run
from .sampling import sample_generator
from .train.run_dir import RunDir

#: offset that gives the evaluation latents their own seeded stream (batches use + 1)
EVAL_SEED_OFFSET = 2

__all__ = ["EVAL_SEED_OFFSET", "evaluate_metrics", "evaluate_run", "evaluate_trained", "metric_selection",
           "metric_values", "run_metrics"]


def metric_selection(cfg: Any, data: Any, extra: Sequence[str] = ()) -> list[str]:
    """The metrics of a run: those that apply to its data by default, then ``eval.metrics``
    (and ``sharpness`` when ``eval.sharpness``), then ``extra``; each once, in that order."""
    names = METRICS.defaults_for(data) + list(cfg.eval.metrics) + (["sharpness"] if cfg.eval.sharpness else [])
    return list(dict.fromkeys([*names, *extra]))


def check_metric_names(names: Sequence[str]) -> None:
    for name in names:
        try:
            METRICS.get(name)
        except UnknownNameError as exc:
            raise ConfigError(str(exc)) from None


def preflight(names: Sequence[str], params: Any, data: Any) -> None:
    """What each metric needs, fetched or built now, before any training: the Inception file,
    a domain classifier, ...; a missing one is a one-line error before the run directory exists."""
    check_metric_names(names)
    for name in dict.fromkeys(names):
        metric = METRICS.get(name)
        if metric.preflight is not None:
            metric.preflight(params, data)


def run_metrics(names: Sequence[str], ctx: EvalContext) -> dict[str, Any]:
    """Each named metric on ``ctx``; protocol records of one key (a feature network shared by
    several metrics) are merged."""
    check_metric_names(names)
    out: dict[str, Any] = {}
    # metrics take second derivatives (sharpness, Laplace): float32 and eager (train.amp, train.compile)
    with ctx.game.differentiated_twice() if ctx.game is not None else contextlib.nullcontext():
        for name in dict.fromkeys(names):
            for key, value in METRICS.get(name)(ctx).items():
                if isinstance(value, dict) and isinstance(out.get(key), dict):
                    value = {**out[key], **value}
                out[key] = value
    return out


def eval_params(cfg: Any, overrides: dict[str, Any] | None = None) -> Any:
    """The ``eval`` section with explicit overrides (e.g. ``sharpness_k`` from a CLI flag),
    validated like the config: a bad value is one line naming ``eval.<key>``."""
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    if not overrides:
        return cfg.eval
    try:
        return type(cfg.eval).model_validate({**cfg.eval.model_dump(), **overrides})
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        what = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        raise ConfigError(f"eval.{key}: {what} (got {err.get('input')!r})") from None


def _label(use_ema: bool, mc_dropout: bool) -> str:
    return ("ema" if use_ema else "raw") + ("+mc_dropout" if mc_dropout else "")


def trained_context(source: Any, *, use_ema: bool | None = None, mc_dropout: bool = False, seed: int | None = None,
                    n: int | None = None, reference: DataSource | None = None, params: dict[str, Any] | None = None,
                    device: torch.device | str | None = None, use_cache: bool = True,
                    sampler_state: dict[str, Any] | None = None) -> EvalContext:
    """The context of a trained generator: a training Experiment or a :class:`LoadedRun`.
    ``sampler_state`` (default: a loaded run's checkpoint's) lets metrics rebuild the last
    training batch."""
    cfg = source.cfg if hasattr(source, "cfg") else source.config
    use_ema = cfg.eval.use_ema if use_ema is None else use_ema
    generator = source.ema.generator if use_ema else source.game.generator
    device = torch.device(device) if device is not None else source.device
    latent_dim = source.game.latent_dim

    def sampler(count: int, s: int) -> Tensor:
        return sample_generator(generator, count, latent_dim, seed=s, mc_dropout=mc_dropout, device=device)

    def held_out(split: str, count: int) -> Tensor:
        from .model_evidence import held_out_data

        return held_out_data(cfg, split, count, kind=source.data.kind)

    state = sampler_state if sampler_state is not None else getattr(source, "sampler_state", None)

    def last_batch() -> Tensor | None:
        """The batch the sampler handed out last (global units, so data-parallel runs too);
        None for streamed data, whose sampler holds indices into files."""
        from .diagnostics.hessian import last_training_batch

        data = getattr(source.data, "data", None)
        if state is None or "perm" not in state or not isinstance(data, Tensor) or len(state["perm"]) != len(data):
            return None
        return last_training_batch(data, state, cfg.train.batch_size)

    return EvalContext(
        params=eval_params(cfg, params), seed=cfg.seed + EVAL_SEED_OFFSET if seed is None else seed,
        n=cfg.eval.n_samples if n is None else n, run_seed=cfg.seed, sampler=sampler,
        label=_label(use_ema, mc_dropout), data=source.data, reference=reference, game=source.game,
        generator=generator, latent_dim=latent_dim, device=device, train_batch_size=cfg.train.batch_size,
        use_reference_cache=use_cache, held_out=held_out, last_training_batch=last_batch,
    )


def evaluate_trained(source: Any, names: Sequence[str] | None = None, **context: Any) -> dict[str, Any]:
    """The scores of a training Experiment or a loaded run (default: its metric selection)."""
    ctx = trained_context(source, **context)
    cfg = source.cfg if hasattr(source, "cfg") else source.config
    return run_metrics(metric_selection(cfg, ctx.data) if names is None else names, ctx)


def evaluate_metrics(
    names: Sequence[str],
    source: Any,
    cfg: Any = None,
    *,
    data: DataSource | None = None,
    n: int | None = None,
    n_ref: int | None = None,
    use_ema: bool | None = None,
    mc_dropout: bool = False,
    seed: int | None = None,
    batch_size: int | None = None,
    device: torch.device | str | None = None,
    use_cache: bool = True,
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Evaluate metrics ``names`` (e.g. ["fid_lenet", "kid_lenet", "pr"]) on ``source``.

    ``source``: generated images (Tensor in [-1, 1]), a loaded run (or its directory), a training
    Experiment, or a sampler ``(n, seed) -> images``. ``data``: the reference data (default: the
    run's training data). Unset arguments come from ``cfg`` (eval.n_samples, eval.n_reference,
    eval.use_ema, seed + 2, eval.inception_path), else from the metrics' defaults. Returns
    ``{value name: float}`` plus ``protocol_<network>`` dicts (docs/metrics.md).
    """
    overrides = {"n_reference": n_ref, "feature_batch_size": batch_size, **(params or {})}
    if isinstance(source, (str, os.PathLike)):
        source = load_run(source)
    if isinstance(source, LoadedRun) or (hasattr(source, "game") and hasattr(source, "ema")):
        if mc_dropout and not isinstance(source, LoadedRun):
            raise ConfigError("MC-dropout evaluation needs a loaded run (occamgan.load_run)")
        ctx = trained_context(source, use_ema=use_ema, mc_dropout=mc_dropout, seed=seed, n=n, reference=data,
                              params=overrides, device=device, use_cache=use_cache)
        return run_metrics(names, ctx)
    cfg = cfg if cfg is not None else build_config()
    ctx = EvalContext(params=eval_params(cfg, overrides), seed=cfg.seed + EVAL_SEED_OFFSET if seed is None else seed,
                      n=cfg.eval.n_samples if n is None else n, run_seed=cfg.seed, reference=data, data=data,
                      use_reference_cache=use_cache)
    if isinstance(source, Tensor):
        ctx.images, ctx.available, ctx.label, ctx.device = source, len(source), "images", source.device
    elif callable(source):
        ctx.sampler, ctx.label = source, "sampler"
    else:
        raise TypeError(f"cannot evaluate a {type(source).__name__}: pass images, a run, an Experiment or a sampler")
    if device is not None:
        ctx.device = torch.device(device)
    return run_metrics(names, ctx)


def evaluate_run(
    run_dir: Any,
    names: Sequence[str],
    *,
    n: int | None = None,
    n_ref: int | None = None,
    reference_split: str | None = None,
    use_ema: bool | None = True,
    mc_dropout: bool = False,
    seed: int | None = None,
    batch_size: int | None = None,
    record: bool = True,
    params: dict[str, Any] | None = None,
    on_result: Any = None,
) -> dict[str, Any]:
    """Evaluate a trained run directory and (with ``record``) record the result in it
    (metrics.jsonl at the run's step and summary.json). ``on_result(results)`` is called before
    anything is written, so computed numbers are never lost to a failed write."""
    run = load_run(run_dir)
    files = RunDir(run.run_dir)
    if record:
        files.check_writable()
    data = None
    if reference_split is not None and reference_split != run.config.data.split:
        tree = run.config.to_dict()
        tree["data"]["split"] = reference_split
        data = build_data(build_config(tree))
    results = evaluate_metrics(names, run, data=data, n=n, n_ref=n_ref, use_ema=use_ema, mc_dropout=mc_dropout,
                               seed=seed, batch_size=batch_size, params=params)
    if on_result is not None:
        on_result(results)
    if record:
        with files.lock():
            files.record_results(run.step, results)
    return results
