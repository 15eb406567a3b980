"""Reference (real-data) features and statistics, cached on disk under a key of the protocol.

The reference set of an evaluation is ``n_ref`` images of a data set drawn by a fixed permutation
(seed 0) -- all of them when ``n_ref`` is None or at least the set's size. Its features (float32)
and their Gaussian statistics (float64, :mod:`occamgan.metrics.fid`) are cached as
``<cache>/reference/<data>-<split>-<network>-n<count>-<hash>.npz``; the hash covers everything
that changes the numbers: the data set (name, split, image shape, size, resize filter, and a
sha256 of the selected images' 8-bit values for in-memory sets), the feature network (name,
weights' sha256, preprocessing) and the selection (count, seed). The full key is stored in the
file and checked on load, so a stale or colliding file is recomputed, never used.
"""
from __future__ import annotations

import hashlib
import zipfile
import zlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import Tensor

from ..data.base import DataSource
from ..cache import cache_dir
from .features import FeatureExtractor, extract_features, quantize
from .fid import FeatureStatistics, GaussianStats

REFERENCE_SEED = 0
KEY_VERSION = 1


@dataclass
class Reference:
    features: Tensor  # (n, d) float32 on the CPU
    stats: GaussianStats
    key: dict[str, Any]
    cached: bool = False

    @property
    def n(self) -> int:
        return self.features.shape[0]


def reference_indices(n_total: int, n_ref: int | None) -> Tensor:
    """The first n_ref of a seed-0 permutation (sorted, for sequential reads), or everything."""
    if n_ref is None or n_ref >= n_total:
        return torch.arange(n_total)
    gen = torch.Generator().manual_seed(REFERENCE_SEED)
    return torch.randperm(n_total, generator=gen)[:n_ref].sort().values


def _selected_batches(data: DataSource, idx: Tensor, batch_size: int) -> Iterator[Tensor]:
    if data.stream is None:
        for chunk in idx.split(batch_size):
            yield data.data[chunk]
        return
    subset = torch.utils.data.Subset(data.stream, idx.tolist())
    loader = torch.utils.data.DataLoader(subset, batch_size=batch_size, num_workers=data.num_workers)
    for _, batch in loader:
        yield batch


def _content_hash(data: DataSource, idx: Tensor) -> str:
    """sha256 of the selected images' 8-bit values (in-memory sets), else of where the files are."""
    digest = hashlib.sha256()
    if data.stream is None:
        for chunk in idx.split(4096):
            digest.update(quantize(data.data[chunk]).to(torch.uint8).numpy().tobytes())
    else:
        digest.update(str(data.info.get("files")).encode())
    return digest.hexdigest()


def data_description(data: DataSource) -> dict[str, Any]:
    """What identifies a reference data set in a protocol record."""
    return {
        "data": data.name, "split": data.info.get("split"), "shape": list(data.sample_shape),
        "size": len(data), "resize_filter": data.info.get("resize_filter"),
    }


def reference_key(data: DataSource, extractor: FeatureExtractor, idx: Tensor) -> dict[str, Any]:
    return {
        "version": KEY_VERSION, **data_description(data), "content_sha256": _content_hash(data, idx),
        "features": extractor.protocol, "n_ref": int(idx.numel()), "selection_seed": REFERENCE_SEED,
    }


def cache_path(key: dict[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    name = f"{key['data']}-{key['split']}-{key['features']['network']}-n{key['n_ref']}-{digest}.npz"
    return cache_dir() / "reference" / name


def _load(path: Path, key: dict[str, Any]) -> Reference | None:
    try:
        with np.load(path, allow_pickle=False) as f:
            if json.loads(str(f["key"])) != json.loads(json.dumps(key)):
                return None
            stats = GaussianStats(f["mean"], f["cov"], int(f["n"]))
            return Reference(torch.from_numpy(f["features"]), stats, key, cached=True)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error):  # unreadable or torn: recompute
        return None


def _save(path: Path, ref: Reference) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, features=ref.features.numpy(), mean=ref.stats.mean, cov=ref.stats.cov,
             n=ref.stats.n, key=json.dumps(ref.key, sort_keys=True))
    os.replace(tmp, path)


def reference_features(
    data: DataSource,
    extractor: FeatureExtractor,
    n_ref: int | None = None,
    batch_size: int = 100,
    use_cache: bool = True,
) -> Reference:
    """Features and statistics of the reference images of ``data`` (cached when ``use_cache``)."""
    idx = reference_indices(len(data), n_ref)
    key = reference_key(data, extractor, idx)
    path = cache_path(key)
    if use_cache and path.is_file():
        loaded = _load(path, key)
        if loaded is not None:
            return loaded
    feats = extract_features(extractor, _selected_batches(data, idx, batch_size))
    ref = Reference(feats, FeatureStatistics().update(feats).gaussian(), key)
    if use_cache:
        _save(path, ref)
    return ref
