"""Inception Score (Salimans et al. 2016, "Improved Techniques for Training GANs", Sec. 4;
docs/methods.md section 10):

    IS = exp(E_x KL(p(y | x) || p(y))),   p(y) = E_x p(y | x),

computed on each of ``splits`` consecutive parts of the samples (boundaries i * N // splits, as
in the authors' code) and reported as the mean and the standard deviation (ddof = 0, np.std as in
their code) of the per-split scores. Everything is float64. Uniform predictions give 1; confident
predictions spread evenly over C classes give C (the maximum).

The class probabilities are the 1008-way softmax of the TF Inception network inception-2015-12-05
(the FID network's weights). The FID file that occamgan uses (:mod:`.features`) is TorchScript
with the 2048 pool features only, so it cannot give an IS by itself. :func:`load_logits_network`
reads, without executing pickled code, either

- a **TorchScript** network with class outputs: (a) one that takes the FID network's input
  (3 x 299 x 299, (p - 128) / 128, TF1 bilinear resize; :func:`.features.inception_preprocess`) and
  returns (B, C) logits or probabilities, or (b) one whose ``forward`` has a ``no_output_bias``
  argument (the TorchScript Inception of the StyleGAN2-ADA / StyleGAN3 metrics): it is given
  8-bit images of any size (uint8, 3 channels; it resizes itself) and ``no_output_bias``; or
- a **state dict** (``torch.load(weights_only=True)``) holding the final softmax layer, keys
  ``fc.weight`` (C x 2048) and optionally ``fc.bias`` (pytorch-fid's ``pt_inception-2015-12-05``
  weights file has them, among the rest of the network), or ``weight``/``bias``: applied to the
  2048 pool features of the FID network, logits = features W^T (+ b). That is how the authors'
  code computes them (pool3 times the weights of ``softmax/logits/MatMul``).

By default the output bias is left out, as in the authors' code (their matmul has no bias),
torch-fidelity (``logits_unbiased``) and StyleGAN's metrics (``no_output_bias=True``);
``output_bias=True`` adds it. How to get such a file offline: docs/metrics.md, "Inception Score".
The feature-only FID network (its sha256, or any network with 2048 outputs) is refused with one
line (:class:`InceptionLogitsUnavailable`).

:func:`inception_score_of_images` is the entry point for a metric: images in [-1, 1] (a tensor or
an iterable of batches) through a loaded network, then :func:`inception_score`.
"""
from __future__ import annotations

import os
import pickle
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from ..data.download import file_digest
from pydantic import Field

from ..errors import ConfigError, OccamError
from ..params import Params
from .base import EvalContext, register_metric
from .features import (
    INCEPTION_SHA256,
    FeatureExtractor,
    inception_candidates,
    inception_extractor,
    inception_preprocess,
    quantize,
)

#: classes of the TF Inception's softmax (1000 ImageNet classes and 8 unused outputs)
INCEPTION_CLASSES = 1008
POOL_DIM = 2048
#: rows summing to 1 within this (and no negative entry) are read as probabilities
PROBABILITY_TOL = 1e-4
LOGITS_ENV = "OCCAMGAN_INCEPTION_LOGITS"
HOW_TO = 'docs/metrics.md, section "Inception Score"'

Output = Literal["auto", "logits", "probs"]


class InceptionLogitsError(OccamError):
    """A logits network for the Inception Score is missing, unreadable or of the wrong kind."""


class InceptionLogitsUnavailable(InceptionLogitsError):
    """Only the feature-only FID network is at hand: no class outputs, no Inception Score."""


# ----------------------------------------------------------------------------- the score
def log_class_probabilities(probs_or_logits: Tensor, output: Output = "auto") -> Tensor:
    """log p(y | x) in float64 from (N, C) probabilities or logits.

    ``output="auto"`` reads the input as probabilities when no entry is negative and every row
    sums to 1 within :data:`PROBABILITY_TOL` (a softmax output), else as logits (log-softmax)."""
    x = torch.as_tensor(probs_or_logits).detach().to("cpu", torch.float64)
    if x.dim() != 2 or x.shape[1] < 2:
        raise ValueError(f"expected (samples, classes) with at least 2 classes, got shape {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("class outputs contain NaN or infinite values")
    if output == "auto":
        output = "probs" if looks_like_probabilities(x) else "logits"
    if output == "logits":
        return F.log_softmax(x, dim=1)
    if output != "probs":
        raise ValueError(f"output must be 'auto', 'logits' or 'probs', got {output!r}")
    if not looks_like_probabilities(x):
        raise ValueError(f"rows are not probabilities (entries >= 0 summing to 1 within {PROBABILITY_TOL})")
    return torch.log(x / x.sum(1, keepdim=True))  # renormalise the round-off; log 0 = -inf is fine


def looks_like_probabilities(x: Tensor) -> bool:
    return bool((x >= 0).all()) and float((x.sum(1) - 1).abs().max()) <= PROBABILITY_TOL


def split_scores(log_p: Tensor, splits: int = 10) -> Tensor:
    """exp(mean_x KL(p(y|x) || p(y))) for each of ``splits`` consecutive parts (float64)."""
    n = log_p.shape[0]
    if splits < 1:
        raise ValueError(f"splits must be >= 1, got {splits}")
    if n < splits:
        raise ValueError(f"{n} samples cannot be cut into {splits} splits")
    scores = []
    for i in range(splits):
        part = log_p[i * n // splits:(i + 1) * n // splits]
        p = part.exp()
        log_marginal = torch.logsumexp(part, dim=0) - torch.log(torch.tensor(float(part.shape[0]), dtype=part.dtype))
        # KL(p || p_y) = sum_y p (log p - log p_y), with 0 log 0 = 0 (a class with p = 0 adds nothing)
        kl = torch.where(p > 0, p * (part - log_marginal), torch.zeros_like(p)).sum(1)
        scores.append(torch.exp(kl.mean()))
    return torch.stack(scores)


def inception_score(probs_or_logits: Tensor, splits: int = 10, output: Output = "auto") -> tuple[float, float]:
    """(mean, std) of the Inception Score over ``splits`` parts (module docstring), in float64.

    ``probs_or_logits``: (N, C) class probabilities or logits (``output`` says which; "auto"
    tells them apart, see :func:`log_class_probabilities`)."""
    scores = split_scores(log_class_probabilities(probs_or_logits, output), splits)
    return float(scores.mean()), float(scores.std(unbiased=False))


# ----------------------------------------------------------------------------- networks
@dataclass
class LogitsNetwork:
    """A network giving class outputs for images in [-1, 1] (B, C, H, W), with its protocol."""

    forward: Callable[[Tensor], Tensor]
    classes: int
    #: what the outputs are: "logits", "probs" or "auto" (decided by :func:`inception_score`)
    output: Output
    device: torch.device
    protocol: dict[str, Any] = field(default_factory=dict)

    @torch.no_grad()
    def __call__(self, images: Tensor) -> Tensor:
        out = self.forward(images.to(self.device))
        return out.reshape(out.shape[0], -1).to("cpu", torch.float64)


def feature_only_message(path: Path | str) -> str:
    return (f"{path} is the feature-only FID Inception network (2048 pool features, no class outputs), "
            f"so it cannot give an Inception Score; get the 1008-way softmax layer as in {HOW_TO}")


def _is_torchscript(path: Path) -> bool:
    """TorchScript archives are zip files with a ``<name>/code/`` folder; torch.save files are not."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any(name.split("/")[1:2] == ["code"] for name in zf.namelist())


def load_logits_network(path: str | os.PathLike, device: torch.device | str = "cpu",
                        features: FeatureExtractor | None = None, eval_cfg: Any = None,
                        output_bias: bool = False, trusted_sha256: str | None = None) -> LogitsNetwork:
    """A :class:`LogitsNetwork` from a TorchScript file or a state dict of the softmax layer.

    Args:
        path: the file (module docstring for what it may hold).
        device: where the network runs.
        features: for a state dict: the 2048-d pool-feature extractor the layer is applied to
            (default: the FID Inception network, found as :func:`.features.find_inception` does).
        eval_cfg: the ``eval`` section, passed to the FID network's lookup.
        output_bias: add the softmax layer's bias (off by default, as in Salimans et al.'s code).
        trusted_sha256: a TorchScript file is a program, and occamgan runs no file that could
            execute code unless its owner vouches for it: TorchScript loads only when its sha256
            equals this (``eval.inception_logits_sha256``); a state dict needs no such pin.

    Raises :class:`InceptionLogitsUnavailable` for the feature-only FID network and
    :class:`InceptionLogitsError` for a missing or unreadable file."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise InceptionLogitsError(f"Inception logits network {path} not found; see {HOW_TO}")
    digest = file_digest(path, "sha256")
    if digest == INCEPTION_SHA256:
        raise InceptionLogitsUnavailable(feature_only_message(path))
    device = torch.device(device)
    record = {"path": str(path), "sha256": digest, "output_bias": output_bias}
    if _is_torchscript(path):
        if trusted_sha256 is None or trusted_sha256.lower() != digest:
            raise InceptionLogitsError(
                f"{path} is a TorchScript program, which runs code when loaded; occamgan loads it only when you "
                f"pin it: set eval.inception_logits_sha256={digest} if you trust this file, or use the softmax "
                f"layer as a state dict ({HOW_TO})")
        return _torchscript_network(path, device, record, output_bias)
    return _softmax_layer_network(path, device, record, features, eval_cfg, output_bias)


def _torchscript_network(path: Path, device: torch.device, record: dict[str, Any],
                         output_bias: bool) -> LogitsNetwork:
    try:
        with warnings.catch_warnings():  # TorchScript: jit.load is the only way to read it
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(path), map_location=device).eval()
    except RuntimeError as exc:
        raise InceptionLogitsError(f"{path}: cannot load the TorchScript network ({str(exc).splitlines()[0]})") from None
    arguments = [a.name for a in module.forward.schema.arguments]
    if "no_output_bias" in arguments:  # StyleGAN's metrics network: 8-bit input of any size
        def forward(images: Tensor) -> Tensor:
            x = quantize(images)
            x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
            return module(x.to(torch.uint8), no_output_bias=not output_bias)

        record |= {"format": "torchscript (no_output_bias)", "input": "uint8 3xHxW (the network resizes)"}
    else:
        if output_bias:
            raise InceptionLogitsError(f"{path}: output_bias applies to a softmax-layer state dict or a network "
                                       "with a no_output_bias argument, not to this TorchScript network")

        def forward(images: Tensor) -> Tensor:
            return module(inception_preprocess(images))

        record |= {"format": "torchscript", "input": "3x299x299, (p-128)/128, tf1-bilinear"}
        record.pop("output_bias")
    with torch.no_grad():
        probe = forward(torch.zeros(2, 3, 32, 32, device=device))
    classes = probe.reshape(probe.shape[0], -1).shape[1]
    if classes == POOL_DIM:
        raise InceptionLogitsUnavailable(f"{path}: outputs {POOL_DIM} values, the FID pool features; "
                                         f"an Inception Score needs class outputs ({HOW_TO})")
    if classes < 2:
        raise InceptionLogitsError(f"{path}: outputs {classes} value(s) per image, not class scores")
    record |= {"classes": classes}
    return LogitsNetwork(forward, classes, "auto", device, {"network": "inception-logits", **record})


def _softmax_layer_network(path: Path, device: torch.device, record: dict[str, Any],
                           features: FeatureExtractor | None, eval_cfg: Any, output_bias: bool) -> LogitsNetwork:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InceptionLogitsError(f"{path}: neither TorchScript nor a state dict readable with "
                                   f"weights_only=True ({reason})") from None
    if not isinstance(state, dict):
        raise InceptionLogitsError(f"{path}: expected a state dict of the softmax layer, got {type(state).__name__}")
    prefix = "fc." if "fc.weight" in state else ""
    weight, bias = state.get(prefix + "weight"), state.get(prefix + "bias")
    if not isinstance(weight, Tensor) or weight.dim() != 2 or weight.shape[1] != POOL_DIM or weight.shape[0] < 2:
        shape = tuple(weight.shape) if isinstance(weight, Tensor) else None
        raise InceptionLogitsError(f"{path}: no softmax layer 'fc.weight' or 'weight' of shape (classes, {POOL_DIM}) "
                                   f"(found {shape})")
    classes = weight.shape[0]
    if bias is not None and (not isinstance(bias, Tensor) or tuple(bias.shape) != (classes,)):
        raise InceptionLogitsError(f"{path}: bias of shape {tuple(getattr(bias, 'shape', ()))}, expected ({classes},)")
    if output_bias and bias is None:
        raise InceptionLogitsError(f"{path}: output_bias is on but the file has no bias")
    extractor = features if features is not None else inception_extractor(eval_cfg, device)
    if extractor.dim != POOL_DIM:
        raise InceptionLogitsError(f"the softmax layer needs {POOL_DIM}-d pool features, "
                                   f"{extractor.name!r} gives {extractor.dim}")
    w = weight.to(device, torch.float64)
    b = bias.to(device, torch.float64) if output_bias and bias is not None else None

    def forward(images: Tensor) -> Tensor:
        return F.linear(extractor(images).to(device, torch.float64), w, b)

    record |= {"format": "softmax layer on pool features", "classes": classes,
               "features": dict(extractor.protocol) or {"network": extractor.name}}
    return LogitsNetwork(forward, classes, "logits", device, {"network": "inception-logits", **record})


def logits_network_candidates(eval_cfg: Any = None) -> list[Path]:
    """Where a logits network is looked for: ``eval.inception_logits_path``, then
    ``$OCCAMGAN_INCEPTION_LOGITS`` (there is no default file: it is not downloaded)."""
    paths = []
    if eval_cfg is not None and getattr(eval_cfg, "inception_logits_path", None):
        paths.append(Path(eval_cfg.inception_logits_path).expanduser())
    if os.environ.get(LOGITS_ENV):
        paths.append(Path(os.environ[LOGITS_ENV]).expanduser())
    return paths


def find_logits_network(eval_cfg: Any = None, device: torch.device | str = "cpu",
                        output_bias: bool = False) -> LogitsNetwork:
    """The first configured logits network, else one line saying that only the FID network (or
    nothing) is available and where to read how to get one."""
    candidates = logits_network_candidates(eval_cfg)
    for path in candidates:
        if path.is_file():
            return load_logits_network(path, device, eval_cfg=eval_cfg, output_bias=output_bias,
                                       trusted_sha256=getattr(eval_cfg, "inception_logits_sha256", None))
    if candidates:
        raise InceptionLogitsError(f"Inception logits network {candidates[0]} not found; see {HOW_TO}")
    fid_files = [p for p in inception_candidates(eval_cfg) if p.is_file()]
    if fid_files:
        raise InceptionLogitsUnavailable(
            f"only the feature-only FID Inception network ({fid_files[0]}) is available, which has no class "
            f"outputs; set eval.inception_logits_path or ${LOGITS_ENV} to a logits network ({HOW_TO})")
    raise InceptionLogitsUnavailable(f"no Inception logits network: set eval.inception_logits_path or "
                                     f"${LOGITS_ENV} ({HOW_TO})")


# ----------------------------------------------------------------------------- images
def inception_score_of_images(images: Tensor | Iterable[Tensor], network: LogitsNetwork,
                              batch_size: int = 100, splits: int = 10) -> tuple[float, float]:
    """(mean, std) Inception Score of images in [-1, 1]: a (N, C, H, W) tensor (cut into batches of
    ``batch_size``) or an iterable of such batches, through ``network`` (:class:`LogitsNetwork`)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    batches = images.split(batch_size) if isinstance(images, Tensor) else images
    outputs = [network(batch) for batch in batches if len(batch)]
    if not outputs:
        raise ValueError("no images")
    return inception_score(torch.cat(outputs), splits=splits, output=network.output)


# ----------------------------------------------------------------------------- the registered score
class InceptionScoreParams(Params):
    #: a logits network for the Inception Score: the 1008-way softmax layer of inception-2015-12-05
    #: as a state dict (applied to the FID network's pool features), or a TorchScript network
    #: pinned by inception_logits_sha256; None -> $OCCAMGAN_INCEPTION_LOGITS (docs/metrics.md)
    inception_logits_path: str | None = None
    #: sha256 of a TorchScript logits network you trust (TorchScript runs code when loaded)
    inception_logits_sha256: str | None = None
    #: the splits of Salimans et al. (2016): the score is averaged over this many disjoint parts
    is_splits: int = Field(10, ge=1)


@register_metric("is", params=InceptionScoreParams)
def inception_score_metric(ctx: EvalContext) -> dict[str, Any]:
    """is, is_std: the Inception Score of generated images over eval.is_splits splits."""
    from .image import generated_batches

    p = ctx.params
    network = ctx.memo(("logits-network",), lambda: find_logits_network(p, ctx.device))
    n = ctx.n if ctx.available is None else min(ctx.n, ctx.available)
    if n < p.is_splits:
        raise ConfigError(f"is needs at least eval.is_splits = {p.is_splits} images (got {n})")
    batch = getattr(p, "feature_batch_size", 50)
    mean, std = inception_score_of_images(generated_batches(ctx, n, batch), network, splits=p.is_splits)
    return {"is": mean, "is_std": std,
            "protocol_is": {**network.protocol, "generator": ctx.label, "n": n, "splits": p.is_splits,
                            "sample_seed": ctx.seed}}
