"""Locate data files, and fetch missing ones from their canonical source with a checksum.

Where files live: ``data.root`` if set, else ``$OCCAMGAN_DATA``, else the cache directory
(``$XDG_CACHE_HOME/occamgan/data``, default ``~/.cache/occamgan/data``). A named set looks in
``<root>/<name>/`` and then in ``<root>`` itself, so ``data.root`` may point at the folder that
holds the files. Downloads go to ``<root>/<name>/`` through a temporary file that is renamed only
after its checksum matched, so a broken transfer never leaves a file that looks valid.
"""
from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from ..cache import cache_dir
from ..errors import DataError

#: seconds before a download attempt gives up (offline machines fail fast on DNS anyway)
TIMEOUT = 30
log = logging.getLogger("occamgan")


@dataclass(frozen=True)
class RemoteFile:
    """A file of a public data set: its name, where it is published and its checksum."""

    name: str
    url: str
    md5: str | None = None
    sha256: str | None = None


def data_root(root: str | None) -> Path:
    """``data.root``, then ``$OCCAMGAN_DATA``, then ``$XDG_CACHE_HOME/occamgan/data``."""
    if root:
        return Path(root).expanduser()
    if os.environ.get("OCCAMGAN_DATA"):
        return Path(os.environ["OCCAMGAN_DATA"]).expanduser()
    return cache_dir() / "data"


def candidate_dirs(root: str | None, name: str) -> list[Path]:
    """Directories searched for the files of data set ``name``, in order."""
    base = data_root(root)
    return [base / name, base]


def file_digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(path: Path, remote: RemoteFile) -> None:
    """Raise :class:`DataError` unless ``path`` has the published checksum(s) of ``remote``."""
    for algorithm, expected in (("md5", remote.md5), ("sha256", remote.sha256)):
        if expected and file_digest(path, algorithm) != expected:
            raise DataError(f"{remote.url}: {algorithm} checksum mismatch (download corrupt or changed)")


def download(remote: RemoteFile, target_dir: Path) -> Path:
    """Fetch ``remote`` into ``target_dir`` and verify it; raises OSError/DataError on failure."""
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / remote.name
    fd, tmp_name = tempfile.mkstemp(dir=target_dir, prefix=f".{remote.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(remote.url, timeout=TIMEOUT) as resp:
            size = int(resp.headers.get("Content-Length") or 0) or None
            log.warning(f"downloading {remote.name}" + (f" ({size / 2**20:.1f} MiB)" if size else "") +
                        f" from {remote.url} to {target_dir}")
            with tqdm(total=size, unit="B", unit_scale=True, desc=remote.name, disable=None) as bar:
                while chunk := resp.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
        verify(tmp, remote)
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def fetch_missing(name: str, remotes: list[RemoteFile], root: str | None, allow_download: bool) -> Path:
    """Download the files of ``remotes`` into ``<root>/<name>/``, or explain where to put them.

    Returns the directory. The error is one line: which files, where, and why the download failed.
    """
    target_dir = candidate_dirs(root, name)[0]
    reason = "downloads are off (data.download=false)"
    if allow_download:
        try:
            for remote in remotes:
                if not (target_dir / remote.name).is_file():
                    download(remote, target_dir)
            return target_dir
        except (OSError, DataError) as exc:  # URLError is an OSError
            reason = f"download failed: {exc}"
    files = ", ".join(r.name for r in remotes)
    source = remotes[0].url.rsplit("/", 1)[0]
    raise DataError(
        f"{name}: missing {files}; put them in {target_dir} (or set data.root / $OCCAMGAN_DATA) "
        f"- canonical source {source}; {reason}"
    )
