import os

import pytest
import torch

# Two cores are shared by the suite; one thread per worker avoids oversubscription.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def tiny_overrides() -> list[str]:
    """A config small enough for a training run of a few seconds."""
    return [
        "train.steps=20", "train.batch_size=32", "model.width=16", "model.depth=1",
        "data.n_samples=256", "eval.n_samples=256", "eval.w2_samples=128",
        "train.checkpoint_every=10", "train.log_every=5",
    ]


def real_data_root():
    """Where real data sets live for the tests that need them: $OCCAMGAN_DATA (``.ci/run`` points it
    at the project's shared data). Unset: those tests skip; set but without the files: they fail,
    so CI never skips them silently."""
    from pathlib import Path

    root = os.environ.get("OCCAMGAN_DATA")
    return Path(root) if root else None


def needs_real_mnist():
    """A skip marker for tests of the real MNIST files (see :func:`real_data_root`)."""
    root = real_data_root()
    return pytest.mark.skipif(root is None, reason="real MNIST: set OCCAMGAN_DATA to a folder holding mnist/")


@pytest.fixture
def real_mnist_root():
    root = real_data_root()
    assert root is not None and (root / "mnist" / "train-labels-idx1-ubyte.gz").is_file(), (
        f"OCCAMGAN_DATA={root} does not hold mnist/*.gz")
    return root
