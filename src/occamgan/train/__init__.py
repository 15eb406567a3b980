"""The training loop and what it writes: checkpoints, logs, EMA, run directories."""
