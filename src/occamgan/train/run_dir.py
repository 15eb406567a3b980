"""The run directory: its layout, its atomic writes, its lock, and the one way results are
recorded into it. No other module spells a file name of a run.

Layout of a run directory ``RUN``::

    RUN/.occamgan-run        marker: this directory was made by occamgan (what --overwrite may replace)
    RUN/.lock                advisory lock (fcntl) of the one process that writes into the run
    RUN/config.yaml          the resolved configuration of what runs
    RUN/metrics.jsonl        one JSON object per logged step (losses, lrs, evaluations)
    RUN/summary.json         the final scores under "metrics" (and "evidence" when measured)
    RUN/checkpoints/last.pt  the full training state, written atomically
    RUN/samples.png          the final samples (scatter for toy data, grid for images)
    RUN/samples/step_NNNNNNN.png   image runs: a grid of fixed latents at every checkpoint
    RUN/report.html          the self-contained HTML report
    RUN/evidence_sigma.png   the evidence against sigma (occamgan evidence --fit-sigma)

Results computed after training (``occamgan eval``, ``sharpness``, ``evidence``) go through
:meth:`RunDir.record_results`: merged into the record of their step in metrics.jsonl (or appended
as a new record) and into ``summary.json["metrics"]``, both rewritten atomically.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
from pathlib import Path
from typing import Any, Iterator

from ..atomic import atomic_write_text
from ..errors import RunDirError

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_FILE = "last.pt"
SAMPLES_PLOT = "samples.png"
SAMPLES_DIR = "samples"
REPORT_FILE = "report.html"
SIGMA_CURVE_FILE = "evidence_sigma.png"
MARKER_FILE = ".occamgan-run"
LOCK_FILE = ".lock"


def to_jsonable(value: Any) -> Any:
    """Tensors and numpy scalars -> Python numbers; non-finite floats -> their string."""
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, float) and value != value or value in (float("inf"), float("-inf")):
        return str(value)
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value


class RunDir:
    """A run directory at ``path`` (which need not exist yet)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # ------------------------------------------------------------------ layout
    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def summary_path(self) -> Path:
        return self.path / SUMMARY_FILE

    @property
    def checkpoint_path(self) -> Path:
        return self.path / CHECKPOINT_DIR / CHECKPOINT_FILE

    @property
    def samples_plot_path(self) -> Path:
        return self.path / SAMPLES_PLOT

    @property
    def samples_dir(self) -> Path:
        return self.path / SAMPLES_DIR

    def grid_path(self, step: int) -> Path:
        return self.samples_dir / f"step_{step:07d}.png"

    def grid_paths(self) -> list[Path]:
        """The sample grids written during training, in step order."""
        return sorted(self.samples_dir.glob("step_*.png")) if self.samples_dir.is_dir() else []

    @property
    def report_path(self) -> Path:
        return self.path / REPORT_FILE

    @property
    def sigma_curve_path(self) -> Path:
        """The held-out evidence against sigma, written by ``occamgan evidence --fit-sigma``."""
        return self.path / SIGMA_CURVE_FILE

    @property
    def marker_path(self) -> Path:
        return self.path / MARKER_FILE

    # ------------------------------------------------------------------ what it is
    def exists(self) -> bool:
        return self.path.is_dir()

    def is_empty(self) -> bool:
        """No directory, or one with nothing but a lock left by an earlier attempt."""
        if not self.path.exists():
            return True
        return self.path.is_dir() and all(p.name == LOCK_FILE for p in self.path.iterdir())

    def is_run(self) -> bool:
        """Written by occamgan: the marker, or (runs from before the marker) a config.yaml beside
        a metrics.jsonl or a checkpoint."""
        if self.marker_path.is_file():
            return True
        return self.config_path.is_file() and (self.metrics_path.is_file() or self.checkpoint_path.is_file())

    def has_checkpoint(self) -> bool:
        return self.checkpoint_path.is_file()

    def is_finished(self) -> bool:
        return self.summary_path.is_file()

    # ------------------------------------------------------------------ writing
    def check_writable(self) -> None:
        """Fail before any work when the run cannot be written (read-only, a path under a file)."""
        probe = self.path if self.path.exists() else next((p for p in self.path.parents if p.exists()), Path("."))
        if probe.exists() and not probe.is_dir():
            raise RunDirError(f"cannot write {str(self.path)!r}: {str(probe)!r} is a file")
        if not os.access(probe, os.W_OK | os.X_OK):
            raise RunDirError(f"cannot write {str(self.path)!r}: {str(probe)!r} is not writable")

    def create(self) -> None:
        """Make the directory (and its parents) and mark it as a run."""
        self.path.mkdir(parents=True, exist_ok=True)
        if not self.marker_path.exists():
            atomic_write_text(self.marker_path, "occamgan run directory\n")

    def write_config(self, yaml_text: str) -> None:
        atomic_write_text(self.config_path, yaml_text)

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_write_text(self.summary_path, json.dumps(to_jsonable(summary), indent=2))

    def read_summary(self) -> dict[str, Any]:
        if not self.summary_path.is_file():
            return {}
        try:
            summary = json.loads(self.summary_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise RunDirError(f"{str(self.summary_path)!r} is not valid JSON") from None
        if not isinstance(summary, dict):
            raise RunDirError(f"{str(self.summary_path)!r} does not hold a JSON object")
        return summary

    def read_metrics(self) -> list[dict[str, Any]]:
        """The records of metrics.jsonl; a torn last line (a killed writer) is skipped."""
        if not self.metrics_path.is_file():
            return []
        records = []
        for line in self.metrics_path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict):
                records.append(record)
        return records

    def truncate_metrics_after(self, step: int) -> None:
        """Drop the log records after ``step`` (a resume from that step's checkpoint), so the log
        tells the story of an uninterrupted run."""
        if not self.metrics_path.is_file():
            return
        kept = [r for r in self.read_metrics() if r.get("step", 0) <= step]
        atomic_write_text(self.metrics_path, "".join(json.dumps(r) + "\n" for r in kept))

    def record_results(self, step: int, values: dict[str, Any], section: str = "metrics") -> None:
        """Record results of the run at ``step``: as ``eval/<name>`` in metrics.jsonl (merged into
        that step's record when it is the last one, else a new record) and merged into
        ``summary.json[section]`` (``step`` there is kept, or set if the summary is new)."""
        values = to_jsonable(values)
        records = self.read_metrics()
        tagged = {f"eval/{k}": v for k, v in values.items()}
        if records and records[-1].get("step") == step:
            records[-1] = {**records[-1], **tagged}
        else:
            records.append({"step": step, **tagged})
        atomic_write_text(self.metrics_path, "".join(json.dumps(r) + "\n" for r in records))
        summary = self.read_summary() or {"step": step}
        summary[section] = {**summary.get(section, {}), **values}
        self.write_summary(summary)

    # ------------------------------------------------------------------ one writer
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run's advisory lock; a second writer gets a one-line RunDirError naming the
        holder's pid at once (no waiting). The lock dies with its process (kill -9 included)."""
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                raise RunDirError(f"run directory {str(self.path)!r} is in use by process {holder}; "
                                  "wait for it to finish or stop it") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            try:
                yield
            finally:
                os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
