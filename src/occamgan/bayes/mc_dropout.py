"""MC dropout (Gal & Ghahramani 2016, "Dropout as a Bayesian approximation", Sec. 3), as used in
GANs by Filippone & Linhard (2025, Sec. "Approximate inference"; methods.md section 3).

Dropout layers (rate ``model.dropout``) stay stochastic when sampling, so that the generator
weights are integrated over the approximate posterior that dropout defines: at sampling time the
network is in eval mode (BatchNorm uses its running statistics) while every dropout layer is in
training mode. Dropout masks are drawn element-wise (Dropout) or per sample and channel
(Dropout2d), so in one batched forward every sample sees its own mask.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import Tensor, nn

#: Dropout, Dropout1d/2d/3d, AlphaDropout and FeatureAlphaDropout
DROPOUT_TYPES: tuple[type[nn.Module], ...] = (nn.modules.dropout._DropoutNd,)


def dropout_layers(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, DROPOUT_TYPES) and m.p > 0]


def has_dropout(module: nn.Module) -> bool:
    return bool(dropout_layers(module))


def has_batch_coupling(module: nn.Module) -> bool:
    """True when a sample's output depends on the other samples of its batch: a BatchNorm layer
    in training mode. Such a network cannot run several MC passes as one stacked batch."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training for m in module.modules())


def enable_mc_dropout(module: nn.Module) -> nn.Module:
    """Eval mode for everything (normalisation frozen) except dropout layers, which stay active."""
    module.eval()
    for layer in dropout_layers(module):
        layer.train()
    return module


def disable_mc_dropout(module: nn.Module) -> nn.Module:
    """Plain eval mode: dropout off, normalisation frozen."""
    return module.eval()


@contextlib.contextmanager
def preserved_training_flags(module: nn.Module) -> Iterator[nn.Module]:
    """Restore the ``training`` flag of every submodule on exit."""
    flags = [(m, m.training) for m in module.modules()]
    try:
        yield module
    finally:
        for m, flag in flags:
            m.training = flag


@contextlib.contextmanager
def mc_dropout(module: nn.Module) -> Iterator[nn.Module]:
    """Within the block ``module`` is in MC-dropout mode; its previous modes are restored after."""
    with preserved_training_flags(module):
        yield enable_mc_dropout(module)


@torch.no_grad()
def sample_mc_dropout(
    generator: nn.Module,
    n: int,
    latent_dim: int,
    seed: int = 0,
    device: torch.device | str | None = None,
    batch: int = 4096,
) -> Tensor:
    """``n`` samples G(z; psi * mask) with z ~ N(0, I) and a fresh dropout mask per sample.

    Reproducible: the latents come from a CPU generator seeded with ``seed`` (as for ordinary
    sampling) and the masks from the global RNG re-seeded with ``seed`` inside a forked RNG
    state, so the caller's random stream is left untouched.
    """
    if device is None:
        device = next(generator.parameters()).device
    device = torch.device(device)
    gen = torch.Generator().manual_seed(seed)
    devices = [device] if device.type == "cuda" else []
    out = []
    with mc_dropout(generator), torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        for start in range(0, n, batch):
            z = torch.randn(min(batch, n - start), latent_dim, generator=gen).to(device)
            out.append(generator(z).float())
    return torch.cat(out)
