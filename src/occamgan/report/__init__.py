"""Self-contained HTML reports of a run directory or a sweep directory.

    from occamgan.report import write_report
    write_report("runs/ring8")                   # -> runs/ring8/report.html
    write_report("sweeps/gaussian", out="g.html")

One HTML file, nothing beside it: plots are rendered with matplotlib to PNG in memory and
embedded (like the run's sample images) as base64 data URIs, the style sheet is inline, and no
script, font or link points outside the file (links from a sweep to its runs' reports are
relative paths). Every string read from the run's files is escaped.

- :mod:`.run`: one run (config, loss/lr curves, metric curves, scores, sharpness, evidence, samples);
- :mod:`.sweep`: a sweep (plan, mean ± std table, plots against the grid, runs);
- :mod:`.html`, :mod:`.plots`, :mod:`.values`: builders, plots, reading logged values.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..atomic import atomic_write
from ..errors import OccamError, RunDirError
from ..train.run_dir import RunDir
from .run import render_run_report
from .sweep import is_sweep, render_sweep_report

__all__ = ["check_writable", "default_report_path", "render_run_report", "render_sweep_report", "report_kind",
           "write_report"]


def report_kind(path: str | os.PathLike) -> str:
    """"sweep" or "run"; a :class:`RunDirError` naming ``path`` if it is neither."""
    path = Path(path)
    if not path.is_dir():
        raise RunDirError(f"{str(path)!r} is not a directory (expected a run or a sweep directory)")
    if is_sweep(path):
        return "sweep"
    if RunDir(path).is_run():
        return "run"
    raise RunDirError(f"{str(path)!r} is neither a run directory (written by `occamgan train`) "
                      "nor a sweep directory (written by `occamgan sweep`)")


def default_report_path(path: str | os.PathLike) -> Path:
    """Where the report of a run or a sweep goes by default (the same file name in both)."""
    return RunDir(path).report_path


def check_writable(out: str | os.PathLike) -> Path:
    """Fail early, with a one-line :class:`OccamError` naming the path, if a file cannot be
    written at ``out``: it is a directory, a parent is a file, or the nearest existing parent
    folder is not writable (tried with a temporary file, so read-only mounts are caught too)."""
    out = Path(out)
    if out.is_dir():
        raise OccamError(f"cannot write the report to {str(out)!r}: it is a directory")
    parent = out.parent
    while not parent.exists():
        if parent == parent.parent:
            break
        parent = parent.parent
    if not parent.is_dir():
        raise OccamError(f"cannot write the report to {str(out)!r}: {str(parent)!r} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OccamError(f"cannot write the report to {str(out)!r}: {str(parent)!r} is not writable")
    try:
        fd, probe = tempfile.mkstemp(prefix=".report-probe.", dir=parent)
    except OSError as exc:
        raise OccamError(f"cannot write the report to {str(out)!r}: {str(parent)!r}: {exc.strerror or exc}") from None
    os.close(fd)
    os.unlink(probe)
    return out


def write_report(path: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Write the HTML report of the run or sweep directory ``path`` to ``out`` (default:
    ``path/report.html``), atomically; return where it went."""
    kind = report_kind(path)
    out = Path(out) if out is not None else default_report_path(path)
    check_writable(out)  # before the (slower) reading and plotting
    if kind == "sweep":
        text = render_sweep_report(path, link_base=out.parent)
    else:
        text = render_run_report(path)
    data = text.encode("utf-8")
    mode = _file_mode()

    def write(fh) -> None:
        os.fchmod(fh.fileno(), mode)  # the temporary file is private (0600); a report is for reading
        fh.write(data)

    atomic_write(out, write)
    return out


def _file_mode() -> int:
    """0666 less the process umask: the mode an ordinary ``open(..., "w")`` would give."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask
