"""``occamgan eval``: image metrics of a trained run, with their protocol."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..cli import app, user_errors


@app.command("eval")
@user_errors
def evaluate(
    run_dir: Path = typer.Argument(..., help="Run directory written by `occamgan train`."),
    metrics: str = typer.Option("fid,kid,pr,dc", "--metrics", help="Comma-separated metric names: image kinds (fid, kid, pr, dc) taken on --features, full names (fid_lenet), or any registered metric (toy, sharpness); `occamgan eval --list` shows them."),
    n: Optional[int] = typer.Option(None, "--n", min=2, help="Generated images (default: eval.n_samples of the run)."),
    features: str = typer.Option("inception", "--features", help="Feature network: inception, lenet, or a trained classifier's name."),
    n_ref: Optional[int] = typer.Option(None, "--n-ref", min=2, help="Reference images (default: as many as --n; capped by the data set)."),
    ref_split: Optional[str] = typer.Option(None, "--ref-split", help="Reference split: train or test (default: the run's data.split)."),
    raw: bool = typer.Option(False, "--raw", help="Evaluate the raw generator instead of its EMA."),
    mc_dropout: bool = typer.Option(False, "--mc-dropout", help="Sample with dropout active (a fresh mask per sample)."),
    seed: Optional[int] = typer.Option(None, "--seed", min=0, max=2**63 - 1, help="Seed of the latent draws (default: the run's seed + 2, as during training)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="Images per feature-network batch."),
    record: bool = typer.Option(True, "--record/--no-record", help="Append to metrics.jsonl and merge into summary.json."),
) -> None:
    """Compute FID/KID/precision-recall/density-coverage of a run's generator on the chosen
    features; print them with the protocol (network, sample counts, reference split, EMA/raw)."""
    from ..errors import ConfigError
    from ..evaluation import evaluate_run
    from ..metrics.image import metric_names

    if ref_split not in (None, "train", "test"):
        raise ConfigError(f"--ref-split must be train or test (got {ref_split!r})")
    names = metric_names([m.strip() for m in metrics.split(",") if m.strip()], features)
    evaluate_run(run_dir, names, n=n, n_ref=n_ref, reference_split=ref_split, use_ema=not raw,
                 mc_dropout=mc_dropout, seed=seed, batch_size=batch_size, record=record, on_result=print_results)


def print_results(results: dict) -> None:
    """Values first, then one line per protocol record (printed before anything is written)."""
    from ..metrics.base import metric_values

    for name, value in metric_values(results).items():
        shown = ", ".join(f"{v:.6g}" for v in value) if isinstance(value, list) else f"{value:.6g}"
        typer.echo(f"{name:<20} {shown}")
    for key, p in results.items():
        if key.startswith("protocol_") and isinstance(p, dict) and "reference" in p:
            ref = p["reference"]
            typer.echo(f"[{p['features']['network']}] {p['generator']} generator, {p['n_fake']} generated vs "
                       f"{p['n_real']} {ref['data']}/{ref['split']} images ({p['reference_selection']}), "
                       f"resize {p['features']['resize']}")
