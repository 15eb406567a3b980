"""Where occamgan keeps what it builds or downloads once: ``$XDG_CACHE_HOME/occamgan`` (default
``~/.cache/occamgan``). Data sets live under ``data/`` unless ``data.root`` or ``$OCCAMGAN_DATA``
says otherwise; feature networks under ``features/``; reference statistics under ``reference/``."""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/occamgan`` (default ``~/.cache/occamgan``)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "occamgan"
