"""``occamgan evidence``: the marginal likelihood of a trained run's generator on held-out data."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..cli import app, user_errors


@app.command()
@user_errors
def evidence(
    run_dir: Path = typer.Argument(..., help="Run directory written by `occamgan train`."),
    split: str = typer.Option("test", "--split", help="Held-out data: test (image test split; a fresh seeded draw for toy data), validation or train."),
    n: int = typer.Option(200, "--n", min=1, help="Held-out points."),
    method: str = typer.Option("ais", "--method", help="ais (annealed importance sampling with HMC) or is (prior importance sampling)."),
    chains: int = typer.Option(16, "--chains", min=1, help="AIS chains (IS: samples) per point."),
    steps: int = typer.Option(1000, "--steps", min=2, help="AIS intermediate distributions T."),
    leapfrog: int = typer.Option(10, "--leapfrog", min=1, help="Leapfrog steps per HMC transition."),
    schedule: str = typer.Option("sigmoid", "--schedule", help="Annealing schedule: sigmoid, linear or geometric."),
    sigma: Optional[float] = typer.Option(None, "--sigma", help="Relaxation width (default: the run's regularizers.sigma if > 0)."),
    fit: bool = typer.Option(False, "--fit-sigma", help="Fit sigma by maximum marginal likelihood on the validation split; plots the curve into the run."),
    bdmc: bool = typer.Option(False, "--bdmc", help="Also bound AIS's error by bidirectional Monte Carlo on --n simulated points."),
    laplace: bool = typer.Option(False, "--laplace", help="Also the surrogate Laplace Occam factor over the generator's weights."),
    prior_precision: float = typer.Option(1.0, "--prior-precision", help="Laplace: precision of the Gaussian prior on the weights."),
    raw: bool = typer.Option(False, "--raw", help="Use the raw generator instead of its EMA."),
    seed: int = typer.Option(0, "--seed", min=0, max=2**63 - 1, help="Seed of the estimator's random numbers."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="Latents per generator pass (points x chains; default: all)."),
    record: bool = typer.Option(True, "--record/--no-record", help="Write the result into summary.json under evidence."),
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress", help="Progress bar over the annealing steps (default: when stderr is a terminal)."),
) -> None:
    """log p(x | psi) of held-out data under the relaxed model N(x | G(z), sigma^2 I), z ~ N(0, I):
    mean and standard error over points, bits/dim for images, with its full protocol."""
    from ..model_evidence import evidence_of_run

    report = evidence_of_run(run_dir, split=split, n=n, method=method, chains=chains, steps=steps,
                             leapfrog=leapfrog, schedule=schedule, sigma=sigma, fit=fit, with_bdmc=bdmc,
                             with_laplace=laplace, prior_precision=prior_precision, use_ema=not raw, seed=seed,
                             batch_size=batch_size, record=record, progress=progress, echo=typer.echo)
    if report.get("sigma_plot"):
        typer.echo(f"sigma curve: {report['sigma_plot']}")
