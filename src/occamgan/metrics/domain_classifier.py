"""A small LeNet-style classifier whose penultimate layer serves as cheap, domain-specific features.

Why: the FID Inception network costs ~0.2-0.4 s per image on this CPU; a digit classifier costs
well under a millisecond, and its features see what matters for digit-like data (LeCun et al.
1998, "Gradient-based learning applied to document recognition"; the idea of FID on the features
of a domain classifier is the "MNIST FID" of e.g. Lucic et al. 2018, "Are GANs Created Equal?").
Metrics on these features carry the network's name (``fid_lenet``), never plain "FID"
(docs/methods.md section 8).

Architecture (input C x S x S in [-1, 1], S divisible by 4):
conv5x5(C -> w1, pad 2) -> ReLU -> maxpool 2 -> conv5x5(w1 -> w2, pad 2) -> ReLU -> maxpool 2
-> linear(w2 (S/4)^2 -> feature_dim) = FEATURES -> ReLU -> linear(feature_dim -> n_classes).
The features are the pre-activations of the penultimate layer (dense, so their covariance has
full rank; ReLU outputs would have dead units), standardised per dimension by their mean and
standard deviation on the training images. Standardising puts them on the unit scale the cubic
KID kernel (x.y/d + 1)^3 was designed for (raw pre-activations of size ~10 made it explode), and
makes FID values read in units of the real data's feature spread.

A saved classifier is a plain dict (no pickled classes): its hyper-parameters, state_dict, test
accuracy and the data it was trained on, loaded with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..atomic import atomic_write

FORMAT = "occamgan-domain-classifier/2"
#: training images used to estimate the feature standardisation
STANDARDIZE_SAMPLES = 10_000


@dataclass(frozen=True)
class ClassifierSpec:
    channels: int = 1
    size: int = 28
    width1: int = 16
    width2: int = 32
    feature_dim: int = 128
    n_classes: int = 10


class DomainClassifier(nn.Module):
    def __init__(self, spec: ClassifierSpec):
        super().__init__()
        if spec.size % 4:
            raise ValueError(f"classifier input size must be divisible by 4, got {spec.size}")
        self.spec = spec
        self.conv = nn.Sequential(
            nn.Conv2d(spec.channels, spec.width1, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(spec.width1, spec.width2, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.embed = nn.Linear(spec.width2 * (spec.size // 4) ** 2, spec.feature_dim)
        self.head = nn.Linear(spec.feature_dim, spec.n_classes)
        self.register_buffer("feature_mean", torch.zeros(spec.feature_dim))
        self.register_buffer("feature_std", torch.ones(spec.feature_dim))

    def embedding(self, x: Tensor) -> Tensor:
        """Penultimate pre-activations, shape (B, feature_dim)."""
        return self.embed(self.conv(x).flatten(1))

    def features(self, x: Tensor) -> Tensor:
        """Standardised penultimate pre-activations: (embedding - mean) / std."""
        return (self.embedding(x) - self.feature_mean) / self.feature_std

    def forward(self, x: Tensor) -> Tensor:
        return self.head(F.relu(self.embedding(x)))

    @torch.no_grad()
    def standardize(self, images: Tensor, batch_size: int = 1000) -> None:
        """Set feature_mean / feature_std from the embeddings of ``images`` (eval mode)."""
        device = self.feature_mean.device
        emb = torch.cat([self.embedding(fit_to_input(x.to(device), self.spec.channels, self.spec.size))
                         for x in images.split(batch_size)]).double()
        self.feature_mean.copy_(emb.mean(0))
        self.feature_std.copy_(emb.std(0).clamp_min(1e-6))


@dataclass
class TrainedClassifier:
    model: DomainClassifier
    test_accuracy: float
    meta: dict[str, Any]


def fit_to_input(images: Tensor, channels: int, size: int) -> Tensor:
    """Images in [-1, 1] -> the classifier's channels (ITU-R 601-2 luma for RGB -> grey, as the
    image loader; grey -> RGB repeats) and size (bilinear with antialiasing)."""
    if images.shape[1] != channels:
        if channels == 1 and images.shape[1] == 3:
            luma = torch.tensor([0.299, 0.587, 0.114], device=images.device, dtype=images.dtype)
            images = (images * luma.view(1, 3, 1, 1)).sum(1, keepdim=True)
        elif channels == 3 and images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        else:
            raise ValueError(f"cannot map {images.shape[1]} channels to {channels}")
    if images.shape[-2:] != (size, size):
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return images


@torch.no_grad()
def accuracy(model: DomainClassifier, images: Tensor, labels: Tensor, batch_size: int = 1000) -> float:
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    for x, y in zip(images.split(batch_size), labels.split(batch_size)):
        x = fit_to_input(x.to(device), model.spec.channels, model.spec.size)
        correct += (model(x).argmax(1).cpu() == y.cpu()).sum().item()
    model.train(was_training)
    return correct / max(len(labels), 1)


def train_classifier(
    images: Tensor,
    labels: Tensor,
    test_images: Tensor,
    test_labels: Tensor,
    spec: ClassifierSpec | None = None,
    epochs: int = 3,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: bool | None = False,
) -> TrainedClassifier:
    """Adam(lr) on cross-entropy for ``epochs`` passes over (images, labels) in [-1, 1]; returns
    the model (eval mode) with its accuracy on the test images."""
    n_classes = int(max(labels.max().item(), test_labels.max().item())) + 1
    spec = spec or ClassifierSpec(channels=images.shape[1], size=_size_for(images.shape[-1]), n_classes=n_classes)
    torch.manual_seed(seed)
    device = torch.device(device) if device is not None else images.device
    model = DomainClassifier(spec).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    steps = epochs * -(-len(images) // batch_size)
    bar = tqdm(total=steps, desc="domain classifier", unit="batch", disable=None if progress is None else not progress)
    for _ in range(epochs):
        for idx in torch.randperm(len(images), generator=gen).split(batch_size):
            bar.update(1)
            x = fit_to_input(images[idx].to(device), spec.channels, spec.size)
            loss = F.cross_entropy(model(x), labels[idx].to(device).long())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    bar.close()
    model.eval()
    gen_std = torch.Generator().manual_seed(seed)
    model.standardize(images[torch.randperm(len(images), generator=gen_std)[:STANDARDIZE_SAMPLES]])
    acc = accuracy(model, test_images, test_labels)
    meta = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed, "n_train": len(images),
            "n_test": len(test_labels), "train_seconds": round(time.perf_counter() - start, 2)}
    return TrainedClassifier(model, acc, meta)


def _size_for(image_size: int) -> int:
    """Input size: the images' own size rounded up to a multiple of 4 (28 stays 28, 8 stays 8)."""
    return -(-image_size // 4) * 4


def save_classifier(trained: TrainedClassifier, path: str | os.PathLike, name: str, data: str) -> Path:
    """Write the classifier atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT, "name": name, "data": data, "spec": asdict(trained.model.spec),
        "test_accuracy": trained.test_accuracy, "meta": trained.meta,
        "state_dict": {k: v.detach().cpu() for k, v in trained.model.state_dict().items()},
    }
    return atomic_write(path, lambda fh: torch.save(payload, fh))


def load_classifier(path: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[DomainClassifier, dict[str, Any]]:
    """(model in eval mode, the saved dict without its weights)."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else None
        raise ValueError(f"{path} is not an occamgan domain classifier of format {FORMAT} (found {found}); "
                         f"retrain it with `occamgan features train --overwrite`")
    model = DomainClassifier(ClassifierSpec(**payload["spec"]))
    model.load_state_dict(payload["state_dict"])
    info = {k: v for k, v in payload.items() if k != "state_dict"}
    return model.to(device).eval(), info
