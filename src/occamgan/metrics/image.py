"""Image metrics by name, each a registered score of :mod:`occamgan.metrics.base` with its protocol.

Metric names are ``<kind>`` for the FID Inception network and ``<kind>_<network>`` for any other
feature network (e.g. ``fid_lenet``), so a number on domain features is never called plain FID
(docs/methods.md section 8). Kinds and the values they produce (suffixed the same way):

- ``fid``: ``fid`` -- Fréchet distance of the Gaussian fits (:mod:`.fid`);
- ``kid``: ``kid``, ``kid_std`` -- unbiased polynomial-kernel MMD^2 over subsets (:mod:`.kid`);
- ``pr``:  ``precision``, ``recall`` -- k = 3 nearest-neighbour balls (:mod:`.prdc`);
- ``dc``:  ``density``, ``coverage`` -- k = 5 nearest-neighbour balls (:mod:`.prdc`).

Each returns its values plus one ``protocol_<network>`` entry that records how they were
obtained: the network (weights' sha256, preprocessing), the generator (``ema``, ``raw`` or given
``images``), the numbers of generated and reference images, the reference data set and split, the
sampling seed and the metric settings. The metrics of one evaluation share the features of each
network and the k-NN pass of precision/recall and density/coverage (the context's cache).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from pydantic import Field
from torch import Tensor

from ..errors import ConfigError
from ..params import Params
from ..registry import UnknownNameError
from .base import METRICS, EvalContext, Metric
from .features import (DEFAULT_DOMAIN_CLASSIFIER, FEATURE_NETWORKS, classifier_path, default_classifier_name,
                       extract_features, find_inception, load_feature_extractor, train_domain_features,
                       unknown_network)
from .fid import FeatureStatistics, fid_with_diagnostics
from .kid import KID_SUBSET_SIZE, KID_SUBSETS, kernel_inception_distance
from .prdc import DC_K, PR_K, prdc
from .reference import Reference, reference_features

INCEPTION = "inception"
#: kind -> the values it produces
KINDS: dict[str, tuple[str, ...]] = {
    "fid": ("fid",),
    "kid": ("kid", "kid_std"),
    "pr": ("precision", "recall"),
    "dc": ("density", "coverage"),
}
#: images generated per sampler call (bounds memory: 2048 x 3 x 64 x 64 float32 = 100 MB)
SAMPLE_CHUNK = 2048
#: a domain classifier built on first use: one epoch over at most this many training images
#: (MNIST: about 97% test accuracy, recorded in the metric's protocol; `occamgan features train`
#: trains the full one)
FIRST_USE_EPOCHS = 1
FIRST_USE_IMAGES = 20_000
log = logging.getLogger("occamgan")


class ImageMetricParams(Params):
    #: TorchScript FID Inception file; None -> $OCCAMGAN_INCEPTION, then the cache directory
    inception_path: str | None = None
    #: real images of the image-metric reference set (seed-0 subset); None -> as many as n_samples
    n_reference: int | None = Field(None, ge=2)
    #: images per batch through the feature network (Inception at 299 px: ~25 MB per image)
    feature_batch_size: int = Field(50, ge=1)


@dataclass(frozen=True)
class ImageMetric:
    """A metric kind on the features of one network."""

    kind: str
    network: str = INCEPTION

    @property
    def name(self) -> str:
        return self.suffixed(self.kind)

    def suffixed(self, value: str) -> str:
        return value if self.network == INCEPTION else f"{value}_{self.network}"

    @property
    def value_names(self) -> list[str]:
        return [self.suffixed(v) for v in KINDS[self.kind]]

    def values(self, fake: Tensor, reference: Reference, seed: int, shared: dict[str, Any]) -> dict[str, float]:
        """Values of this metric for generated features ``fake`` against ``reference``; ``shared``
        memoises the k-NN pass that precision/recall and density/coverage have in common."""
        if self.kind == "fid":
            fid, shared["sqrtm_imag_ratio"] = fid_with_diagnostics(FeatureStatistics().update(fake).gaussian(),
                                                                  reference.stats)
            values = {"fid": fid}
        elif self.kind == "kid":
            mean, std = kernel_inception_distance(fake, reference.features, KID_SUBSETS, KID_SUBSET_SIZE, seed=seed)
            values = {"kid": mean, "kid_std": std}
        else:
            if "prdc" not in shared:
                shared["prdc"] = prdc(reference.features, fake, k_pr=PR_K, k_dc=DC_K)
            values = {v: shared["prdc"][v] for v in KINDS[self.kind]}
        return {self.suffixed(k): float(v) for k, v in values.items()}

    def features_for(self, data: Any) -> str:
        """The feature network on ``data``: ``lenet`` means the domain classifier of the data set
        (``lenet`` for MNIST, ``lenet_<data>`` for any other, e.g. Fashion-MNIST its own)."""
        return default_classifier_name(data.name) if self.network == DEFAULT_DOMAIN_CLASSIFIER else self.network

    def preflight(self, params: Any, data: Any) -> None:
        """Before training: fetch or build what this metric needs (the Inception file, or the data
        set's domain classifier, trained once and cached), or stop with one line saying why."""
        if getattr(data, "kind", None) != "image":
            raise ConfigError(f"metric {self.name!r} needs an image data set, not {data.name!r}")
        if self.network == INCEPTION:
            find_inception(params)
        else:
            ensure_domain_classifier(self.features_for(data), data)

    def __call__(self, ctx: EvalContext) -> dict[str, Any]:
        data = ctx.reference_data
        if data is None:
            raise ConfigError(f"metric {self.name!r} compares with reference images: pass data=<DataSource>")
        if getattr(data, "kind", None) != "image":
            raise ConfigError(f"metric {self.name!r} needs an image data set, not {data.name!r}")
        n_fake = ctx.n if ctx.available is None else min(ctx.n, ctx.available)
        n_ref = getattr(ctx.params, "n_reference", None)
        n_real = min(n_ref if n_ref is not None else n_fake, len(data))
        check_counts(self.kind, n_fake, n_real)
        batch = ctx.params.feature_batch_size
        network = self.features_for(data)
        if network != self.network:
            ensure_domain_classifier(network, data)
        extractor = ctx.memo(("extractor", network), lambda: load_feature_extractor(network, ctx.params, ctx.device))
        fake = ctx.memo(("features", self.network, n_fake),
                        lambda: extract_features(extractor, generated_batches(ctx, n_fake, batch)))
        ref = ctx.memo(("reference", self.network, n_real, id(data)),
                       lambda: reference_features(data, extractor, n_real, batch, ctx.use_reference_cache))
        shared = ctx.cache.setdefault(("prdc", self.network), {})
        out: dict[str, Any] = self.values(fake, ref, ctx.seed, shared)
        record = protocol_record(extractor.protocol, ref, len(fake), ctx.label, ctx.seed, self.kind)
        if self.kind == "fid":
            # the matrix square root's largest imaginary entry over its real trace: round-off
            # (~1e-10) for full-rank covariances, larger when there are fewer images than features
            record["fid_sqrtm_imag_ratio"] = shared.pop("sqrtm_imag_ratio")
        out[f"protocol_{self.network}"] = record
        return out


def parse_metric(name: str) -> ImageMetric:
    """``fid`` -> (fid, inception); ``kid_lenet`` -> (kid, lenet); ``fid_inception`` -> fid."""
    kind, _, network = name.partition("_")
    if kind not in KINDS or (not network and "_" in name):
        raise ConfigError(
            f"unknown image metric {name!r}; use <kind> or <kind>_<network> with kind in "
            f"{', '.join(KINDS)} (e.g. fid, kid_lenet)"
        )
    return ImageMetric(kind, network or INCEPTION)


def _as_registered(metric: ImageMetric) -> Metric:
    return Metric(metric.name, metric, description=f"{metric.kind} on {metric.network} features",
                  preflight=metric.preflight)


def ensure_domain_classifier(name: str, data: Any) -> None:
    """The domain classifier ``name`` of ``data`` (its default one), trained on first use on the
    data set's train split (one epoch, with a progress bar) and cached; a no-op once cached."""
    if classifier_path(name).is_file() or name in FEATURE_NETWORKS and name != DEFAULT_DOMAIN_CLASSIFIER:
        return
    if name != default_classifier_name(data.name):
        raise unknown_network(name)
    root = getattr(getattr(data, "config", None), "root", None)
    log.warning(f"building the {data.name} domain classifier {name!r} for its image metrics (once; cached at "
                f"{classifier_path(name)})")
    train_domain_features(data.name, name, epochs=FIRST_USE_EPOCHS, root=root, progress=None,
                          max_train=FIRST_USE_IMAGES)


def _resolve(name: str) -> Metric | None:
    """The family ``<kind>_<network>`` for every feature network there is: a registered one or a
    domain classifier in the cache (``occamgan features train --name NETWORK``)."""
    kind, _, network = name.partition("_")
    if kind not in KINDS or not network:
        return None
    if network not in FEATURE_NETWORKS and not classifier_path(network).is_file():
        error = UnknownNameError("metric", name, METRICS.names())
        error.args = (f"{error.args[0]}; {unknown_network(network)}",)
        raise error
    return _as_registered(ImageMetric(kind, network))


for _kind in KINDS:
    for _network in (INCEPTION, DEFAULT_DOMAIN_CLASSIFIER):
        _metric = ImageMetric(_kind, _network)
        METRICS.add(_metric.name, _as_registered(_metric), params=ImageMetricParams)
METRICS.add_family(_resolve)


# ------------------------------------------------------------------------------ generated images
def chunk_seed(seed: int, index: int) -> int:
    """Independent seeds for the sampler's chunks (numpy SeedSequence of (seed, index))."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def generated_batches(ctx: EvalContext, n: int, batch_size: int) -> Iterator[Tensor]:
    """The images under evaluation: given images in order, or ``n`` drawn by the sampler in chunks
    of SAMPLE_CHUNK, chunk i with seed chunk_seed(seed, i) (bounded memory for any n)."""
    if ctx.images is not None:
        yield from ctx.images[:n].split(batch_size)
        return
    for i, start in enumerate(range(0, n, SAMPLE_CHUNK)):
        with torch.no_grad():
            chunk = ctx.sampler(min(SAMPLE_CHUNK, n - start), chunk_seed(ctx.seed, i))
        yield from chunk.split(batch_size)


def protocol_record(extractor_protocol: dict[str, Any], ref: Reference, n_fake: int, label: str, seed: int,
                    kind: str) -> dict[str, Any]:
    record: dict[str, Any] = {
        "features": extractor_protocol, "generator": label, "n_fake": n_fake, "n_real": ref.n,
        "reference": {k: ref.key[k] for k in ("data", "split", "shape", "size", "resize_filter")},
        "reference_selection": "all" if ref.n == ref.key["size"] else f"seed-{ref.key['selection_seed']} subset",
        "sample_seed": seed,
    }
    if kind == "kid":
        record["kid"] = {"subsets": KID_SUBSETS, "subset_size": min(KID_SUBSET_SIZE, n_fake, ref.n),
                         "kernel": "(x.y/d+1)^3"}
    if kind == "pr":
        record["pr_k"] = PR_K
    if kind == "dc":
        record["dc_k"] = DC_K
    return record


def check_counts(kind: str, n_fake: int, n_real: int) -> None:
    """Enough images for the metric: 2 for a covariance, k + 1 for k-NN balls."""
    need = {"pr": PR_K + 1, "dc": DC_K + 1}.get(kind, 2)
    if min(n_fake, n_real) < need:
        raise ConfigError(f"{kind} needs at least {need} generated and reference images (got {n_fake} and {n_real})")


def metric_names(kinds: Sequence[str], features: str = INCEPTION) -> list[str]:
    """``["fid", "pr"]`` on ``lenet`` -> ``["fid_lenet", "pr_lenet"]``; names that already carry a
    network, and names of other registered metrics (``sharpness``), are kept."""
    names = []
    for kind in kinds:
        if kind not in KINDS and "_" not in kind and kind in METRICS:
            names.append(kind)
            continue
        name = kind if "_" in kind or features == INCEPTION else f"{kind}_{features}"
        names.append(parse_metric(name).name)
    return names
