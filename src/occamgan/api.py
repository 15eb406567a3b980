"""The Python API; every CLI command is a thin shell over a function here.

    import occamgan
    result = occamgan.train({"data": {"name": "ring8"}}, overrides=["train.steps=500"])
    print(result.metrics, result.run_dir)
    run = occamgan.load_run(result.run_dir)
    x = run.sample(1000)

Reading runs back lives in :mod:`occamgan.runs`, scoring in :mod:`occamgan.evaluation`, the run
directory's layout in :mod:`occamgan.train.run_dir`; they are re-exported here.
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor

from . import distributed
from .build import Experiment, build_experiment, resolve_device
from .config import Config, build_config, load_config, prune_to_schema, read_config_tree
from .errors import RunDirError
from .evaluation import evaluate_metrics, evaluate_run, metric_selection, preflight, run_metrics, trained_context
from .model_evidence import bdmc, evidence, warn_if_degenerate
from .runs import LoadedRun, as_loaded_run, load_run
from .train.run_dir import RunDir
from .train.trainer import Trainer

__all__ = ["ConfigLike", "LoadedRun", "RunResult", "bdmc", "evaluate_metrics", "evaluate_run", "evidence", "load_run",
           "resolve_config", "sample", "train"]

log = logging.getLogger("occamgan")

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


def check_run_dir(run: RunDir, resume: bool, overwrite: bool) -> None:
    """What may happen to ``run``: --resume needs its checkpoint; --overwrite replaces only a
    directory occamgan wrote; a run that never reached its first checkpoint may be started again."""
    if resume and overwrite:
        raise RunDirError("--resume and --overwrite exclude each other")
    if run.path.exists() and not run.path.is_dir():
        raise RunDirError(f"run directory {str(run.path)!r} is a file")
    run.check_writable()
    if resume:
        if not run.has_checkpoint():
            raise RunDirError(f"cannot resume: {str(run.path)!r} has no checkpoint")
        return
    if run.is_empty() or (run.is_run() and not run.has_checkpoint()):
        return
    if not run.is_run():
        raise RunDirError(f"{str(run.path)!r} exists and is not an occamgan run directory; choose another --out")
    if not overwrite:
        raise RunDirError(f"run directory {str(run.path)!r} exists; pass --resume to continue it or --overwrite to "
                          "replace it")


def train(config: ConfigLike = None, *, overrides: list[str] | None = None, out: str | os.PathLike | None = None,
          resume: bool = False, overwrite: bool = False, progress: bool | None = None) -> RunResult:
    """Train a GAN as configured and write a run directory; return its summary.

    With ``resume=True`` and no ``config``, the run's own config.yaml is the base (overrides such
    as ``train.steps=...`` still apply). Everything is checked before anything is written: the
    config, the run directory, and on resume the checkpoint against the config."""
    run = RunDir(out) if out is not None else None
    if resume and run is None:
        raise RunDirError("--resume needs --out RUN_DIR")
    if resume and config is None and run.config_path.is_file():
        config = prune_to_schema(read_config_tree(run.config_path))
    cfg = resolve_config(config, overrides)
    # under torchrun: join the process group; rank 0 alone decides about and writes the run
    # directory (decisions and their errors reach every rank), every rank trains its shard
    distributed.init(resolve_device(cfg.train.device))
    run = run or RunDir(distributed.on_main(lambda: default_run_dir(cfg)))
    distributed.on_main(lambda: check_run_dir(run, resume, overwrite))
    exp = build_experiment(cfg)  # every config error surfaces before the directory is touched
    if distributed.is_main():
        warn_if_degenerate(cfg, math.prod(exp.data.sample_shape))
        announce_precision(cfg, exp)
    preflight(metric_selection(cfg, exp.data), cfg.eval, exp.data)  # before the directory exists
    trainer = Trainer(exp, run.path, evaluate=lambda e: evaluate_live(e), progress=progress)
    if resume:
        trainer.restore(run.checkpoint_path)  # verified before anything is written
    with contextlib.ExitStack() as held:
        def prepare() -> None:
            held.enter_context(run.lock())
            if not resume and run.exists() and not run.is_empty():
                _clear_run(run)
            run.create()
            run.write_config(cfg.to_yaml())

        distributed.on_main(prepare)
        timing = trainer.fit(restored=resume)
        if not distributed.is_main():
            return RunResult(run.path, {})  # rank 0 evaluates and writes the summary
        summary = finish_run(exp, run, timing, sampler_state=trainer.sampler.state_dict())
    return RunResult(run.path, summary)


def announce_precision(cfg: Config, exp: Experiment) -> None:
    """Under ``train.amp`` or ``train.compile``, one line on what stays float32 and eager."""
    switches = [name for name, on in (("train.amp", cfg.train.amp), ("train.compile", cfg.train.compile)) if on]
    if not switches:
        return
    kept = exp.game.eager_parts(second_order_rule=exp.rule.second_order)
    what = {"train.amp": "bfloat16 autocast", "train.compile": "compiled"}
    tail = "; float32 and eager (differentiated twice): " + "; ".join(kept) if kept else ""
    log.warning(f"{' + '.join(switches)}: {' and '.join(what[s] for s in switches)} forwards of G and D{tail}")


def _clear_run(run: RunDir) -> None:
    """Remove the files of an earlier run in ``run`` (only ever called for an occamgan run)."""
    for child in run.path.iterdir():
        if child.name == ".lock":
            continue
        shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()


def evaluate_live(exp: Experiment) -> dict[str, Any]:
    """The run's metric selection during training (``eval.every``)."""
    ctx = trained_context(exp)
    return run_metrics(metric_selection(exp.cfg, exp.data), ctx)


def finish_run(exp: Experiment, run: RunDir, timing: dict[str, Any],
               sampler_state: dict[str, Any] | None = None) -> dict[str, Any]:
    """Final scores (recorded in metrics.jsonl and summary.json), the samples plot, the report;
    ``sampler_state``: the training batch sampler's, so metrics see the last training batch."""
    from .plots import save_samples_figure  # matplotlib only when a run ends

    cfg = exp.cfg
    ctx = trained_context(exp, sampler_state=sampler_state)
    metrics = run_metrics(metric_selection(cfg, exp.data), ctx)
    samples = ctx.samples()
    plot = save_samples_figure(exp.data, samples, run.samples_plot_path,
                               title=f"{cfg.data.name} / {cfg.objective.name} / step {timing['step']}")
    run.record_results(timing["step"], metrics)
    summary = {**run.read_summary(), "step": timing["step"], "plot": str(plot),
               "steps_per_second": timing["steps_per_second"], "seconds": timing["seconds"],
               "generator": ctx.label, "eval_samples": len(samples)}
    if cfg.train.compile:
        from .compilation import compile_record

        summary["compile"] = record = compile_record(cfg.train.compile_backend, cfg.train.compile_mode)
        log.warning(f"train.compile ({record['backend']}): {record['graph_breaks']} graph breaks"
                    + (f"; most frequent: {record['reasons'][0]}" if record["reasons"] else ""))
    run.write_summary(summary)
    if cfg.train.report:
        from .report import write_report

        write_report(run.path)
    return summary


def sample(run: LoadedRun | str | os.PathLike, n: int, seed: int = 0, use_ema: bool = True,
           mc_dropout: bool = False) -> Tensor:
    """n samples from a run (path or :class:`LoadedRun`)."""
    return as_loaded_run(run).sample(n, seed=seed, use_ema=use_ema, mc_dropout=mc_dropout)
