"""``occamgan features``: feature networks for image metrics (train the domain classifier, show them)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..cli import app, user_errors

features_app = typer.Typer(help="Feature networks for image metrics (FID Inception, domain classifiers).", rich_markup_mode=None,
                           no_args_is_help=True)
app.add_typer(features_app, name="features")


@features_app.command("train")
@user_errors
def train(
    data: str = typer.Option("mnist", "--data", help="Labelled image set with train/test splits (mnist, fashion_mnist, cifar10, digits)."),
    name: Optional[str] = typer.Option(None, "--name", help="Network name (default: lenet for mnist, lenet_<data> otherwise); metrics on it are fid_<name>, kid_<name>, ..."),
    epochs: int = typer.Option(3, "--epochs", min=1, help="Passes over the training split."),
    root: Optional[str] = typer.Option(None, "--root", help="Data directory (default: $OCCAMGAN_DATA, then the cache directory)."),
    seed: int = typer.Option(0, "--seed", min=0, max=2**63 - 1),
    out: Optional[Path] = typer.Option(None, "--out", help="File to write (default: <cache>/features/<name>.pt)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing file."),
) -> None:
    """Train the small domain classifier whose features give fid_<name>, kid_<name>, ... and
    save it with its test accuracy."""
    from ..metrics.features import train_domain_features

    path, trained = train_domain_features(data, name, epochs, root, seed, out, overwrite)
    typer.echo(f"test accuracy {trained.test_accuracy:.4f} on {trained.meta['n_test']} {data} test images "
               f"({trained.meta['train_seconds']:.0f} s); saved {path}")


@features_app.command("list")
@user_errors
def list_networks() -> None:
    """Show the feature networks that are available and where their files are."""
    from ..cache import cache_dir
    from ..metrics.features import FEATURE_NETWORKS, inception_candidates

    for name in FEATURE_NETWORKS.names():
        typer.echo(f"registered: {name}")
    typer.echo(f"inception looked up in: {', '.join(str(p) for p in inception_candidates())}")
    for path in sorted((cache_dir() / "features").glob("*.pt")):
        typer.echo(f"domain classifier: {path.stem} ({path})")
