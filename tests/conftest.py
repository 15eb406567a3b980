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
