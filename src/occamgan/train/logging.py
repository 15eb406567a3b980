"""Where training statistics go: metrics.jsonl (one JSON object per line), an optional
TensorBoard event file, and a progress bar with step, losses and rate."""
from __future__ import annotations

import json
import math
import os
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
    """Append-only JSONL log; on resume, lines after the checkpoint's step are dropped so the
    log tells the same story as an uninterrupted run."""

    def __init__(self, path: Path, resume_step: int | None = None):
        self.path = path
        if resume_step is not None and path.exists():
            self._truncate_after(resume_step)
        self.fh = open(path, "a", buffering=1)

    def _truncate_after(self, step: int) -> None:
        kept = []
        for line in self.path.read_text().splitlines():
            try:
                if json.loads(line).get("step", 0) <= step:
                    kept.append(line)
            except json.JSONDecodeError:
                break  # a torn last line from a killed run
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(k + "\n" for k in kept))
        os.replace(tmp, self.path)

    def write(self, record: dict[str, Any]) -> None:
        self.fh.write(json.dumps({k: to_float(v) for k, v in record.items()}) + "\n")

    def close(self) -> None:
        self.fh.close()


def merge_into_step(path: Path, step: int, values: dict[str, Any]) -> None:
    """Merge ``values`` into the record of ``step`` if it is the log's last line, else append a
    record; rewritten atomically. The final evaluation of a run thus shares the last training
    record instead of adding a second line with the same step."""
    lines = path.read_text().splitlines() if path.is_file() else []
    last: dict[str, Any] = {}
    while lines:
        try:
            last = json.loads(lines[-1])
            break
        except json.JSONDecodeError:
            lines.pop()  # a torn line of a killed writer is no record
    values = {k: to_float(v) for k, v in values.items()}
    if last.get("step") == step:
        lines[-1] = json.dumps({**last, **values})
    else:
        lines.append(json.dumps({"step": step, **values}))
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(line + "\n" for line in lines))
    os.replace(tmp, path)


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
