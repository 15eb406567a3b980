"""``occamgan train``: train a GAN and write a run directory."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from ..cli import app, user_errors

ConfigOpt = typer.Option(None, "--config", "-c", help="YAML file of config sections (see `occamgan config`).")
SetOpt = typer.Option(None, "--set", "-s", metavar="KEY=VALUE", help="Dotted override KEY=VALUE, e.g. train.steps=200 (repeatable; applied after --config).")
OutOpt = typer.Option(None, "--out", "-o", help="Run directory (default: runs/<data>-<objective>-s<seed>-<time>).")


@app.command()
@user_errors
def train(
    config: Optional[Path] = ConfigOpt,
    set_: Optional[list[str]] = typer.Option(None, "--set", "-s", metavar="KEY=VALUE", help=SetOpt.help),
    out: Optional[Path] = OutOpt,
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing run directory."),
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress", help="Progress bar (default: when stderr is a terminal)."),
    nproc: int = typer.Option(1, "--nproc", min=1, help="Data-parallel processes on this machine (as torchrun --nproc-per-node N; train.batch_size is the global batch)."),
) -> None:
    """Train a GAN. With no arguments: the default toy experiment (8 Gaussians on a ring, ~1 min
    on a CPU). Writes config.yaml, metrics.jsonl, checkpoints/, samples.png and summary.json."""
    from ..api import train as run_training

    if nproc > 1:
        launch_processes(config, set_ or [], out, resume, overwrite, progress, nproc)
        return
    result = run_training(config, overrides=set_ or [], out=out, resume=resume, overwrite=overwrite, progress=progress)
    if result.summary:  # data-parallel ranks other than 0 have none: rank 0 prints it
        print_summary(result.summary, result.run_dir)


def launch_processes(config: Optional[Path], overrides: list[str], out: Optional[Path], resume: bool,
                     overwrite: bool, progress: Optional[bool], nproc: int) -> None:
    """``occamgan train`` in ``nproc`` data-parallel processes (torch's elastic agent, as
    torchrun); the config is checked here first, so a mistake is one line, not one per rank."""
    from .. import distributed
    from ..api import default_run_dir, resolve_config
    from ..config import prune_to_schema, read_config_tree
    from ..errors import ConfigError
    from ..train.run_dir import RunDir

    if distributed.launched():
        raise ConfigError("--nproc inside a torchrun worker: start either torchrun or --nproc, not both")
    base = config
    if resume and config is None and out is not None and RunDir(out).config_path.is_file():
        base = prune_to_schema(read_config_tree(RunDir(out).config_path))
    cfg = resolve_config(base, overrides)
    if cfg.train.batch_size % nproc:
        raise ConfigError(f"config key train.batch_size: the global batch {cfg.train.batch_size} does not split "
                          f"into {nproc} equal shards; use a multiple of {nproc}")
    out = out or default_run_dir(cfg)  # decided once, so that every rank writes the same run
    argv = ["train", "--out", str(out)]
    if config is not None:
        argv += ["--config", str(config)]
    for item in overrides:
        argv += ["--set", item]
    argv += ["--resume"] if resume else []
    argv += ["--overwrite"] if overwrite else []
    argv += [] if progress is None else ["--progress" if progress else "--no-progress"]
    code = distributed.launch(argv, nproc)
    if code:
        raise typer.Exit(code)


def print_summary(summary: dict, run_dir: Path) -> None:
    console = Console()
    # the title as its own line: a table title wraps at the (narrow) table's width
    console.print(f"scores at step {summary['step']} ({summary['generator']} generator, {summary['eval_samples']} samples)")
    scores = {k: v for k, v in summary["metrics"].items()
              if not k.startswith("protocol_") and not isinstance(v, dict)}  # how a score was measured: no score
    if scores:
        table = Table()
        table.add_column("metric")
        table.add_column("value", justify="right")
        for key, value in scores.items():
            table.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
        console.print(table)
    else:
        console.print(f"no scores: image runs are scored by the metrics they list, e.g. "
                      f"--set 'eval.metrics=[fid_lenet,kid_lenet]', or afterwards with "
                      f"`occamgan eval {run_dir} --metrics fid,kid --features lenet`")
    console.print(f"{summary['steps_per_second']:.1f} steps/s")
    console.print(f"plot: {summary['plot']}")
    console.print(f"run:  {run_dir}")
