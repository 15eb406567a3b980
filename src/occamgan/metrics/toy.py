"""Scores for toy data with known answers (docs/methods.md section 4; issue "toy metrics").

- ``chi2_score``: the paper's score for samples of N(0, I_2) (Filippone & Linhard 2025, Sec. 6.1,
  from the authors' code): s = ||x||^2 ~ chi^2_2, histogram over its deciles (edges F^-1(0, 0.1,
  ..., 1), last edge +inf), score = sqrt(mean_bins (count / (n/10) - 1)^2); 0 is perfect.
- ``mode_stats``: for mixtures, the fraction of high-quality samples (within ``n_std`` standard
  deviations of their nearest mode) and the number of modes that receive at least
  ``min_fraction`` of their uniform share of high-quality samples (Srivastava et al. 2017, VEEGAN).
- ``w2``: the exact 2-Wasserstein distance between equal-size sample sets, by the network-simplex
  OT solver of POT (``ot.emd2`` with squared Euclidean cost).
- ``mmd``: biased multi-bandwidth MMD^2 (the MMD objective's kernel).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from pydantic import Field

from ..data.base import DataSource
from ..objectives.mmd import mmd2
from ..params import Params
from .base import EvalContext, register_metric

CHI2_BINS = 10


def chi2_score(samples: Tensor) -> float:
    from scipy import stats  # imported on use: keeps `import occamgan` light

    s = samples.double().pow(2).sum(1).cpu().numpy()
    edges = stats.chi2(df=2).ppf(np.linspace(0, 1, CHI2_BINS + 1))
    edges[-1] = np.inf
    counts, _ = np.histogram(s, bins=edges)
    expected = len(s) / CHI2_BINS
    return float(np.sqrt(np.mean((counts / expected - 1) ** 2)))


def mode_stats(samples: Tensor, centers: Tensor, std: float, n_std: float, min_fraction: float) -> tuple[int, float]:
    """Return (modes covered, high-quality fraction)."""
    dist = torch.cdist(samples.double(), centers.double().to(samples.device))
    nearest_dist, nearest = dist.min(1)
    hq = nearest_dist <= n_std * std
    per_mode = torch.bincount(nearest[hq], minlength=len(centers))
    needed = min_fraction * len(samples) / len(centers)
    return int((per_mode >= needed).sum()), float(hq.double().mean())


def w2(x: Tensor, y: Tensor) -> float:
    """Exact W2 between two equal-size empirical measures (uniform weights)."""
    import ot  # POT pulls in scikit-learn: import on use

    if len(x) != len(y):
        raise ValueError(f"w2 needs equal-size sets, got {len(x)} and {len(y)}")
    xa, ya = x.double().flatten(1).cpu().numpy(), y.double().flatten(1).cpu().numpy()
    cost = ot.dist(xa, ya, metric="sqeuclidean")
    weights = np.full(len(xa), 1.0 / len(xa))
    return float(np.sqrt(max(ot.emd2(weights, weights, cost, numItermax=10_000_000), 0.0)))


def _subsample(x: Tensor, n: int, gen: torch.Generator) -> Tensor:
    if len(x) <= n:
        return x
    return x[torch.randperm(len(x), generator=gen)[:n].to(x.device)]


def toy_metrics(samples: Tensor, data: DataSource, eval_cfg: Any, bandwidths: Sequence[float] | None = None,
                seed: int = 0) -> dict[str, float]:
    """Every toy score that applies to ``data``, computed on generated ``samples``."""
    out: dict[str, float] = {}
    if data.standard_normal:
        out["chi2_score"] = chi2_score(samples)
    if data.centers is not None and data.std is not None:
        covered, hq = mode_stats(samples, data.centers, data.std, eval_cfg.hq_std, eval_cfg.mode_min_fraction)
        out["modes_covered"], out["hq_fraction"] = covered, hq
        out["n_modes"] = len(data.centers)
    gen = torch.Generator().manual_seed(seed)
    n = min(eval_cfg.w2_samples, len(samples), len(data))
    fake, real = _subsample(samples, n, gen), _subsample(data.data, n, gen)
    bandwidths = eval_cfg.mmd_bandwidths if bandwidths is None else bandwidths
    out["mmd"] = float(mmd2(real.double(), fake.double().to(real.device), bandwidths))
    out["w2"] = w2(fake, real)
    return out


# ----------------------------------------------------------------------------- registered scores
class ToyParams(Params):
    #: samples per set for the exact 2-Wasserstein distance and the MMD score (O(n^2) cost)
    w2_samples: int = Field(2000, ge=2)
    #: a sample is high quality within hq_std standard deviations of a mixture mode
    hq_std: float = Field(3.0, gt=0)
    #: a mode is covered when it holds at least this fraction of its uniform share of samples
    mode_min_fraction: float = Field(0.1, gt=0, le=1)
    #: RBF precisions of the MMD score (the MMD objective's default kernel)
    mmd_bandwidths: list[float] = Field(default_factory=lambda: [1.0, 0.5, 0.1, 0.02, 0.01, 0.002, 0.001],
                                        min_length=1)


def _is_toy(data: Any) -> bool:
    return getattr(data, "kind", None) == "toy"


def _protocol(ctx: EvalContext) -> dict[str, Any]:
    return {"generator": ctx.label, "n_samples": ctx.n, "sample_seed": ctx.seed, "data": ctx.data.name,
            "subsample_seed": ctx.run_seed, "w2_samples": ctx.params.w2_samples}


@register_metric("toy", params=ToyParams, applies_by_default=_is_toy)
def toy_scores(ctx: EvalContext) -> dict[str, Any]:
    """chi2_score (standard-normal data), modes_covered / hq_fraction (mixtures), mmd, w2 of
    generated samples against the training data."""
    values: dict[str, Any] = dict(toy_metrics(ctx.samples(), ctx.data, ctx.params, seed=ctx.run_seed))
    values["protocol_toy"] = _protocol(ctx)
    return values
