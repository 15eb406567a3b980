"""``occamgan sharpness``: Hessian eigenvalues of a trained run's generator (and critic) loss: the
top ones by Lanczos (ours), the largest-magnitude one by power iteration on one batch (the
authors'), the smallest ones; each flag overrides the metric's ``eval.sharpness_*`` knob."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..cli import app, user_errors


@app.command()
@user_errors
def sharpness(
    run_dir: Path = typer.Argument(..., help="Run directory written by `occamgan train`."),
    k: Optional[int] = typer.Option(None, "--k", "-k", min=1, help="Number of top eigenvalues (default: eval.sharpness_k of the run)."),
    batches: Optional[int] = typer.Option(None, "--batches", min=1, help="Data batches to average over (default: eval.sharpness_batches)."),
    player: str = typer.Option("g", "--player", help="Whose loss: g (L_G w.r.t. the generator), d (L_D w.r.t. the critic) or both."),
    reduce: Optional[str] = typer.Option(None, "--reduce", help="Over batches: eigenvalues (mean of per-batch top-k) or hessian (top-k of the mean Hessian); default: eval.sharpness_reduce."),
    method: Optional[List[str]] = typer.Option(None, "--method", "-m", help="What to measure (repeatable): lanczos_top (top_eigenvalue: largest algebraic, mean over batches), power_abs (top_abs_eigenvalue: largest magnitude by power iteration on one batch, the authors' protocol), smallest (bottom_eigenvalue); default: eval.sharpness_methods."),
    power_iters: Optional[int] = typer.Option(None, "--power-iters", min=1, help="power_abs: at most this many Hessian-vector products (default: eval.sharpness_power_iters, 20 as the authors')."),
    power_tol: Optional[float] = typer.Option(None, "--power-tol", min=0.0, help="power_abs: relative change that stops the iteration (default: eval.sharpness_power_tol, 1e-4)."),
    power_batch: Optional[str] = typer.Option(None, "--power-batch", help="power_abs: last (the run's last training batch, the authors'; default: eval.sharpness_power_batch) or seeded (the first seeded batch, the one the Lanczos methods see first)."),
    raw: bool = typer.Option(False, "--raw", help="Measure the raw generator instead of its EMA."),
    record: bool = typer.Option(True, "--record/--no-record", help="Append to metrics.jsonl and merge into summary.json."),
) -> None:
    """Sharpness of a run: eigenvalues of the Hessian of its loss (Lanczos or power iteration on
    Hessian-vector products) over seeded training batches, networks in eval mode."""
    from ..errors import ConfigError
    from ..evaluation import evaluate_run
    from .eval import print_results

    if player not in ("g", "d", "both"):
        raise ConfigError(f"--player must be g, d or both (got {player!r})")
    if reduce is not None and reduce not in ("eigenvalues", "hessian"):
        raise ConfigError(f"--reduce must be eigenvalues or hessian (got {reduce!r})")
    if power_batch is not None and power_batch not in ("last", "seeded"):
        raise ConfigError(f"--power-batch must be last or seeded (got {power_batch!r})")
    methods = ("lanczos_top", "power_abs", "smallest")
    for m in method or ():
        if m not in methods:
            raise ConfigError(f"--method must be one of {', '.join(methods)} (got {m!r})")
    params = {"sharpness_k": k, "sharpness_batches": batches, "sharpness_reduce": reduce, "sharpness_players": player,
              "sharpness_methods": list(method) if method else None, "sharpness_power_iters": power_iters,
              "sharpness_power_tol": power_tol, "sharpness_power_batch": power_batch}
    use_ema = None if not raw else False
    evaluate_run(run_dir, ["sharpness"], use_ema=use_ema, record=record, params=params, on_result=print_results)
