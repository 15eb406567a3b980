"""Where training statistics go: metrics.jsonl (one JSON object per line), an optional
TensorBoard event file, and a progress bar with step, losses and rate."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm


def to_float(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class JsonlLog:
    """Append-only JSONL log (line-buffered, so a killed run loses at most a torn last line,
    which readers skip); a resume first drops the records after its checkpoint
    (:meth:`occamgan.train.run_dir.RunDir.truncate_metrics_after`)."""

    def __init__(self, path: Path):
        self.path = path
        self.fh = open(path, "a", buffering=1)

    def write(self, record: dict[str, Any]) -> None:
        self.fh.write(json.dumps({k: to_float(v) for k, v in record.items()}) + "\n")

    def close(self) -> None:
        self.fh.close()


class TensorBoardLog:
    def __init__(self, log_dir: Path):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(log_dir))

    def write(self, record: dict[str, Any]) -> None:
        step = record["step"]
        for key, value in record.items():
            value = to_float(value)
            if key != "step" and isinstance(value, (int, float)):
                self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        self.writer.close()


class Progress:
    """tqdm bar (stderr); disabled when stderr is not a terminal unless forced."""

    def __init__(self, total: int, initial: int, enabled: bool | None):
        self.bar = tqdm(total=total, initial=initial, disable=None if enabled is None else not enabled,
                        unit="step", dynamic_ncols=True, desc="train")

    def update(self, n: int, stats: dict[str, Any]) -> None:
        shown = {k: f"{to_float(v):.4g}" for k, v in stats.items() if k.startswith("loss")}
        self.bar.set_postfix(shown, refresh=False)
        self.bar.update(n)

    def close(self) -> None:
        self.bar.close()
