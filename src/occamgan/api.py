"""The Python API; every CLI command is a thin shell over a function here.

    import occamgan
    result = occamgan.train({"data": {"name": "ring8"}}, overrides=["train.steps=500"])
    print(result.metrics, result.run_dir)
    run = occamgan.load_run(result.run_dir)
    x = run.sample(1000)
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .build import Experiment, build_experiment
from .config import Config, build_config, load_config
from .errors import ConfigError, RunDirError
from .metrics.image_eval import evaluate_metrics, evaluate_run  # noqa: F401  (public: image metrics)
from .metrics.toy import toy_metrics
from .train.checkpoint import load_checkpoint
from .train.logging import merge_into_step
from .train.trainer import CHECKPOINT_NAME, EVAL_SEED_OFFSET, Trainer, draw_samples

ConfigLike = Config | dict[str, Any] | str | os.PathLike | None


@dataclass
class RunResult:
    run_dir: Path
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def metrics(self) -> dict[str, Any]:
        return self.summary.get("metrics", {})


def resolve_config(config: ConfigLike = None, overrides: list[str] | None = None) -> Config:
    """A Config from a Config, a nested dict, a YAML path or None (defaults), plus overrides."""
    if isinstance(config, Config):
        return build_config(config.to_dict(), overrides)
    if isinstance(config, dict):
        return build_config(config, overrides)
    return load_config(config, overrides)


def default_run_dir(cfg: Config) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path("runs") / f"{cfg.data.name}-{cfg.objective.name}-s{cfg.seed}-{stamp}"
    path, i = base, 1
    while path.exists():
        path, i = base.with_name(f"{base.name}-{i}"), i + 1
    return path


def _check_run_dir(run_dir: Path, resume: bool, overwrite: bool) -> None:
    if resume and overwrite:
        raise RunDirError("--resume and --overwrite exclude each other")
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"run directory {str(run_dir)!r} is a file")
    if resume:
        if not (run_dir / "checkpoints" / CHECKPOINT_NAME).is_file():
            raise RunDirError(f"cannot resume: {str(run_dir)!r} has no checkpoints/{CHECKPOINT_NAME}")
    elif run_dir.exists() and any(run_dir.iterdir()) and not overwrite:
        raise RunDirError(f"run directory {str(run_dir)!r} exists; pass --resume to continue it or --overwrite to replace it")


def train(config: ConfigLike = None, *, overrides: list[str] | None = None, out: str | os.PathLike | None = None,
          resume: bool = False, overwrite: bool = False, progress: bool | None = None) -> RunResult:
    """Train a GAN as configured and write a run directory; return its summary.

    With ``resume=True`` and no ``config``, the run's own config.yaml is the base (overrides such
    as ``train.steps=...`` still apply)."""
    run_dir = Path(out) if out is not None else None
    if resume and run_dir is None:
        raise RunDirError("--resume needs --out RUN_DIR")
    if resume and config is None and (run_dir / "config.yaml").is_file():
        config = run_dir / "config.yaml"
    cfg = resolve_config(config, overrides)
    run_dir = run_dir or default_run_dir(cfg)
    _check_run_dir(run_dir, resume, overwrite)
    exp = build_experiment(cfg)  # every config error surfaces before the directory is touched
    if overwrite and run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(cfg.to_yaml())
    trainer = Trainer(exp, run_dir, evaluate=periodic_metrics, progress=progress)
    timing = trainer.fit(resume=resume)
    summary = finish_run(exp, run_dir, timing)
    return RunResult(run_dir, summary)


def periodic_metrics(exp: Experiment, step: int) -> dict[str, Any]:
    return evaluate_generator(exp)


def evaluate_generator(exp: Experiment, samples: Tensor | None = None) -> dict[str, Any]:
    cfg = exp.cfg
    if samples is None:
        samples = draw_samples(exp, cfg.eval.n_samples, cfg.seed + EVAL_SEED_OFFSET, cfg.eval.use_ema)
    metrics: dict[str, Any] = {}
    if exp.data.kind == "toy":
        metrics.update(toy_metrics(samples, exp.data, cfg.eval, cfg.objective.mmd_bandwidths, cfg.seed))
    if cfg.eval.metrics:
        metrics.update(evaluate_metrics(cfg.eval.metrics, exp, cfg))
    if cfg.eval.sharpness:
        from .diagnostics.hessian import sharpness_of_experiment

        metrics.update(sharpness_of_experiment(exp))
    return metrics


def finish_run(exp: Experiment, run_dir: Path, timing: dict[str, Any]) -> dict[str, Any]:
    from .plots import save_samples_figure  # matplotlib only when a run ends

    cfg = exp.cfg
    samples = draw_samples(exp, cfg.eval.n_samples, cfg.seed + EVAL_SEED_OFFSET, cfg.eval.use_ema)
    metrics = evaluate_generator(exp, samples)
    merge_into_step(run_dir / "metrics.jsonl", timing["step"], {f"eval/{k}": v for k, v in metrics.items()})
    plot = save_samples_figure(exp.data, samples, run_dir / "samples.png",
                               title=f"{cfg.data.name} / {cfg.objective.name} / step {timing['step']}")
    summary = {"step": timing["step"], "metrics": metrics, "plot": str(plot),
               "steps_per_second": timing["steps_per_second"], "seconds": timing["seconds"],
               "generator": "ema" if cfg.eval.use_ema else "raw", "eval_samples": len(samples)}
    tmp = run_dir / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2))
    os.replace(tmp, run_dir / "summary.json")
    return summary


@dataclass
class LoadedRun:
    """A trained run restored from its directory: config, Game, EMA generator, step."""

    run_dir: Path
    experiment: Experiment
    step: int

    @property
    def config(self) -> Config:
        return self.experiment.cfg

    @property
    def generator(self) -> torch.nn.Module:
        return self.experiment.ema.generator

    def sample(self, n: int, seed: int = 0, use_ema: bool = True, mc_dropout: bool = False) -> Tensor:
        """n samples; ``mc_dropout`` keeps dropout active (fresh mask per sample) with
        normalisation layers in eval mode."""
        if mc_dropout:
            from .bayes.mc_dropout import sample_mc_dropout

            g = self.experiment.ema.generator if use_ema else self.experiment.game.generator
            return sample_mc_dropout(g, n, self.experiment.game.latent_dim, seed=seed, device=self.experiment.device)
        return draw_samples(self.experiment, n, seed, use_ema)


def load_run(path: str | os.PathLike) -> LoadedRun:
    """Restore a run directory (its config.yaml and checkpoints/last.pt)."""
    run_dir = Path(path)
    if not (run_dir / "config.yaml").is_file():
        raise RunDirError(f"{str(run_dir)!r} is not a run directory (no config.yaml)")
    try:
        cfg = load_config(run_dir / "config.yaml")
    except ConfigError as exc:
        raise RunDirError(f"{str(run_dir)!r}: {exc}") from None
    exp = build_experiment(cfg)
    trainer = Trainer(exp, run_dir, progress=False)
    trainer.restore(trainer.checkpoint_path)
    return LoadedRun(run_dir, exp, trainer.step)


def sample(run: LoadedRun | str | os.PathLike, n: int, seed: int = 0, use_ema: bool = True,
           mc_dropout: bool = False) -> Tensor:
    """n samples from a run (path or :class:`LoadedRun`)."""
    loaded = run if isinstance(run, LoadedRun) else load_run(run)
    return loaded.sample(n, seed=seed, use_ema=use_ema, mc_dropout=mc_dropout)
