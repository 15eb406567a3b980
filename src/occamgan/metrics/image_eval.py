"""Image metrics by name, computed with one call and reported with their protocol.

Metric names are ``<kind>`` for the FID Inception network and ``<kind>_<network>`` for any other
feature network (e.g. ``fid_lenet``), so a number on domain features is never called plain FID
(methods.md section 8). Kinds and the values they produce (suffixed the same way):

- ``fid``: ``fid`` -- Fréchet distance of the Gaussian fits (:mod:`.fid`);
- ``kid``: ``kid``, ``kid_std`` -- unbiased polynomial-kernel MMD^2 over subsets (:mod:`.kid`);
- ``pr``:  ``precision``, ``recall`` -- k = 3 nearest-neighbour balls (:mod:`.prdc`);
- ``dc``:  ``density``, ``coverage`` -- k = 5 nearest-neighbour balls (:mod:`.prdc`).

:func:`evaluate_metrics` returns a flat dict of these values plus one ``protocol_<network>``
entry per feature network that records how they were obtained: the network (weights' sha256,
preprocessing), the generator (``ema``, ``raw`` or given ``images``), the numbers of generated and
reference images, the reference data set and split, the sampling seed and the metric settings.
Values are floats, so logs and tables can read them directly; the protocol travels next to them.
"""
from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

from ..config import build_config
from ..data.base import DataSource, build_data
from ..errors import ConfigError
from .base import METRICS
from .features import DEFAULT_DOMAIN_CLASSIFIER, extract_features, load_feature_extractor
from .fid import FeatureStatistics, fid_from_stats
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

#: (n, seed) -> n images in [-1, 1]
Sampler = Callable[[int, int], Tensor]


@dataclass
class EvalSettings:
    n: int = 10_000
    n_ref: int | None = None  # None -> n
    batch_size: int = 50
    seed: int = 0
    kid_subsets: int = KID_SUBSETS
    kid_subset_size: int = KID_SUBSET_SIZE
    pr_k: int = PR_K
    dc_k: int = DC_K


@dataclass(frozen=True)
class ImageMetric:
    """A metric kind on the features of one network; registered on METRICS under its name."""

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

    def __call__(self, fake: Tensor, reference: Reference, settings: EvalSettings,
                 shared: dict[str, Any] | None = None) -> dict[str, float]:
        """Values of this metric for generated features ``fake`` against ``reference``; ``shared``
        memoises the k-NN pass that precision/recall and density/coverage have in common."""
        if self.kind == "fid":
            values = {"fid": fid_from_stats(FeatureStatistics().update(fake).gaussian(), reference.stats)}
        elif self.kind == "kid":
            mean, std = kernel_inception_distance(fake, reference.features, settings.kid_subsets,
                                                  settings.kid_subset_size, seed=settings.seed)
            values = {"kid": mean, "kid_std": std}
        else:
            shared = {} if shared is None else shared
            if "prdc" not in shared:
                shared["prdc"] = prdc(reference.features, fake, k_pr=settings.pr_k, k_dc=settings.dc_k)
            values = {v: shared["prdc"][v] for v in KINDS[self.kind]}
        return {self.suffixed(k): float(v) for k, v in values.items()}


def parse_metric(name: str) -> ImageMetric:
    """``fid`` -> (fid, inception); ``kid_lenet`` -> (kid, lenet); ``fid_inception`` -> fid."""
    kind, _, network = name.partition("_")
    if kind not in KINDS or (not network and "_" in name):
        raise ConfigError(
            f"unknown image metric {name!r}; use <kind> or <kind>_<network> with kind in "
            f"{', '.join(KINDS)} (e.g. fid, kid_lenet)"
        )
    return ImageMetric(kind, network or INCEPTION)


for _kind in KINDS:
    for _network in (INCEPTION, DEFAULT_DOMAIN_CLASSIFIER):
        METRICS.add(ImageMetric(_kind, _network).name, ImageMetric(_kind, _network))


# ------------------------------------------------------------------------------ image sources
@dataclass
class ImageStream:
    """Where the evaluated images come from: ``batches(n, batch_size)`` and a label for the record."""

    batches: Callable[[int, int], Iterator[Tensor]]
    label: str
    available: int | None = None


def tensor_stream(images: Tensor) -> ImageStream:
    def batches(n: int, batch_size: int) -> Iterator[Tensor]:
        yield from images[:n].split(batch_size)

    return ImageStream(batches, "images", len(images))


def chunk_seed(seed: int, index: int) -> int:
    """Independent seeds for the sampler's chunks (numpy SeedSequence of (seed, index))."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def sampler_stream(sampler: Sampler, seed: int, label: str) -> ImageStream:
    """Images drawn by ``sampler`` in chunks of SAMPLE_CHUNK, chunk i with seed chunk_seed(seed, i)."""

    def batches(n: int, batch_size: int) -> Iterator[Tensor]:
        for i, start in enumerate(range(0, n, SAMPLE_CHUNK)):
            with torch.no_grad():
                chunk = sampler(min(SAMPLE_CHUNK, n - start), chunk_seed(seed, i))
            yield from chunk.split(batch_size)

    return ImageStream(batches, label)


def resolve_source(source: Any, seed: int, use_ema: bool, mc_dropout: bool = False) -> tuple[ImageStream, DataSource | None, torch.device]:
    """(image stream, its training data if known, device) for a Tensor of images, a loaded run
    (``occamgan.api.LoadedRun``), an ``Experiment`` or a sampler ``(n, seed) -> images``."""
    label = ("ema" if use_ema else "raw") + ("+mc_dropout" if mc_dropout else "")
    if isinstance(source, Tensor):
        return tensor_stream(source), None, source.device
    if hasattr(source, "experiment") and hasattr(source, "sample"):  # LoadedRun
        exp = source.experiment

        def sample(n: int, s: int) -> Tensor:
            return source.sample(n, seed=s, use_ema=use_ema, mc_dropout=mc_dropout)

        return sampler_stream(sample, seed, label), exp.data, exp.device
    if hasattr(source, "game") and hasattr(source, "ema"):  # Experiment (training-time evaluation)
        if mc_dropout:
            raise ConfigError("MC-dropout evaluation needs a loaded run (occamgan.api.load_run)")
        from ..train.trainer import draw_samples

        return sampler_stream(lambda n, s: draw_samples(source, n, s, use_ema), seed, label), source.data, source.device
    if callable(source):
        return sampler_stream(source, seed, "sampler"), None, torch.device("cpu")
    raise TypeError(f"cannot evaluate a {type(source).__name__}: pass images, a run, an Experiment or a sampler")


# ------------------------------------------------------------------------------ evaluation
def settings_from_config(cfg: Any = None, **overrides: Any) -> EvalSettings:
    """EvalSettings from ``cfg.eval`` (and ``cfg.seed``), then explicit non-None overrides."""
    s = EvalSettings()
    if cfg is not None:
        from ..train.trainer import EVAL_SEED_OFFSET

        s.n, s.seed = cfg.eval.n_samples, cfg.seed + EVAL_SEED_OFFSET
        s.n_ref = getattr(cfg.eval, "n_reference", None)
        s.batch_size = getattr(cfg.eval, "feature_batch_size", s.batch_size)
    for key, value in overrides.items():
        if value is not None:
            setattr(s, key, value)
    return s


def group_by_network(names: Sequence[str]) -> dict[str, list[ImageMetric]]:
    groups: dict[str, list[ImageMetric]] = defaultdict(list)
    for name in dict.fromkeys(names):  # drop repeats, keep order
        metric = parse_metric(name)
        if metric not in groups[metric.network]:
            groups[metric.network].append(metric)
    return dict(groups)


def protocol_record(extractor_protocol: dict[str, Any], ref: Reference, n_fake: int, label: str,
                    settings: EvalSettings, metrics: list[ImageMetric]) -> dict[str, Any]:
    kinds = {m.kind for m in metrics}
    record: dict[str, Any] = {
        "features": extractor_protocol, "generator": label, "n_fake": n_fake, "n_real": ref.n,
        "reference": {k: ref.key[k] for k in ("data", "split", "shape", "size", "resize_filter")},
        "reference_selection": "all" if ref.n == ref.key["size"] else f"seed-{ref.key['selection_seed']} subset",
        "sample_seed": settings.seed,
    }
    if "kid" in kinds:
        record["kid"] = {"subsets": settings.kid_subsets,
                         "subset_size": min(settings.kid_subset_size, n_fake, ref.n), "kernel": "(x.y/d+1)^3"}
    if "pr" in kinds:
        record["pr_k"] = settings.pr_k
    if "dc" in kinds:
        record["dc_k"] = settings.dc_k
    return record


def check_counts(groups: dict[str, list[ImageMetric]], n_fake: int, n_real: int, settings: EvalSettings) -> None:
    """Enough images for every requested metric: 2 for a covariance, k + 1 for k-NN balls."""
    kinds = {m.kind for ms in groups.values() for m in ms}
    need = max([2] + [settings.pr_k + 1 for _ in kinds & {"pr"}] + [settings.dc_k + 1 for _ in kinds & {"dc"}])
    if min(n_fake, n_real) < need:
        raise ConfigError(f"{', '.join(sorted(kinds))} need at least {need} generated and reference images "
                          f"(got {n_fake} and {n_real})")


def evaluate_metrics(
    names: Sequence[str],
    source: Any,
    cfg: Any = None,
    *,
    data: DataSource | None = None,
    n: int | None = None,
    n_ref: int | None = None,
    use_ema: bool | None = None,
    mc_dropout: bool = False,
    seed: int | None = None,
    batch_size: int | None = None,
    device: torch.device | str | None = None,
    use_cache: bool = True,
) -> dict[str, Any]:
    """Evaluate image metrics ``names`` (e.g. ["fid_lenet", "kid_lenet", "pr"]) on ``source``.

    ``source``: generated images (Tensor in [-1, 1]), a loaded run, an Experiment, or a sampler
    ``(n, seed) -> images``. ``data``: the reference images (default: the run's training data).
    Unset arguments come from ``cfg`` (eval.n_samples, eval.n_reference, eval.use_ema, seed + 2,
    eval.inception_path), else from :class:`EvalSettings`. Returns ``{value name: float}`` plus
    ``protocol_<network>`` dicts (see the module docstring).
    """
    groups = group_by_network(names)
    settings = settings_from_config(cfg, n=n, n_ref=n_ref, seed=seed, batch_size=batch_size)
    if use_ema is None:
        use_ema = bool(cfg.eval.use_ema) if cfg is not None else True
    stream, run_data, source_device = resolve_source(source, settings.seed, use_ema, mc_dropout)
    data = data if data is not None else run_data
    if data is None:
        raise ConfigError("image metrics need reference images: pass data=<DataSource>")
    if data.kind != "image":
        raise ConfigError(f"image metrics ({', '.join(names)}) need an image data set, not {data.name!r}")
    n_fake = settings.n if stream.available is None else min(settings.n, stream.available)
    n_real = min(settings.n_ref if settings.n_ref is not None else n_fake, len(data))
    check_counts(groups, n_fake, n_real, settings)
    device = torch.device(device) if device is not None else source_device
    eval_cfg = cfg.eval if cfg is not None else None
    out: dict[str, Any] = {}
    for network, metrics in groups.items():
        extractor = load_feature_extractor(network, eval_cfg, device)
        fake = extract_features(extractor, stream.batches(n_fake, settings.batch_size))
        ref = reference_features(data, extractor, n_real, settings.batch_size, use_cache)
        shared: dict[str, Any] = {}
        for metric in metrics:
            out.update(metric(fake, ref, settings, shared))
        out[f"protocol_{network}"] = protocol_record(extractor.protocol, ref, len(fake), stream.label, settings, metrics)
    return out


def metric_values(results: dict[str, Any]) -> dict[str, float]:
    """Only the numbers of an :func:`evaluate_metrics` result (drops the protocol entries)."""
    return {k: v for k, v in results.items() if not k.startswith("protocol_")}




# ------------------------------------------------------------------------------ runs
def metric_names(kinds: Sequence[str], features: str = INCEPTION) -> list[str]:
    """``["fid", "pr"]`` on ``lenet`` -> ``["fid_lenet", "pr_lenet"]``; names that already carry a
    network are kept."""
    names = []
    for kind in kinds:
        name = kind if "_" in kind or features == INCEPTION else f"{kind}_{features}"
        names.append(parse_metric(name).name)
    return names


def evaluate_run(
    run_dir: Any,
    names: Sequence[str],
    *,
    n: int | None = None,
    n_ref: int | None = None,
    reference_split: str | None = None,
    use_ema: bool = True,
    mc_dropout: bool = False,
    seed: int | None = None,
    batch_size: int | None = None,
    record: bool = True,
) -> dict[str, Any]:
    """Evaluate a trained run directory and (with ``record``) append the result to its
    metrics.jsonl (keys ``eval/<name>`` at the run's step) and merge it into summary.json."""
    from ..api import load_run  # the API imports the metrics package: import it lazily

    run = load_run(run_dir)
    cfg = run.config
    data = None
    if reference_split is not None and reference_split != cfg.data.split:
        tree = cfg.to_dict()
        tree["data"]["split"] = reference_split
        data = build_data(build_config(tree))
    results = evaluate_metrics(names, run, cfg, data=data, n=n, n_ref=n_ref, use_ema=use_ema,
                               mc_dropout=mc_dropout, seed=seed, batch_size=batch_size)
    if record:
        record_results(Path(run_dir), run.step, results)
    return results


def record_results(run_dir: Any, step: int, results: dict[str, Any]) -> None:
    """Append ``{"step", "eval/<name>": ...}`` to metrics.jsonl; merge into summary.json atomically."""
    run_dir = Path(run_dir)
    line = {"step": step, **{f"eval/{k}": v for k, v in results.items()}}
    with open(run_dir / "metrics.jsonl", "a") as fh:
        fh.write(json.dumps(line) + "\n")
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {"step": step}
    summary.setdefault("metrics", {}).update(results)
    tmp = summary_path.with_name(summary_path.name + ".tmp")
    tmp.write_text(json.dumps(summary, indent=2))
    os.replace(tmp, summary_path)
