"""The one sampling loop: n samples G(z) of a generator with seeded latents, in eval mode (dropout
off, BatchNorm on its running statistics), or with MC dropout (Gal & Ghahramani 2016; Filippone &
Linhard 2025, "Approximate inference": dropout stays active with a fresh mask per sample while
normalisation layers are frozen). Every sampler of occamgan (final scores, image grids,
``occamgan sample``, image metrics, evidence) draws through :func:`sample_generator`.

Reproducible and free of side effects: the latents come from a CPU ``torch.Generator`` seeded
with ``seed`` (so CPU and CUDA runs draw the same z), MC-dropout masks from the global RNG
re-seeded with ``seed`` inside a forked RNG state, and the module's training flags are restored,
so the caller's random stream and modes are left untouched.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import Tensor, nn

from .bayes.mc_dropout import mc_dropout as mc_dropout_mode
from .bayes.mc_dropout import preserved_training_flags

#: latents per forward pass (bounds memory for any n)
SAMPLE_BATCH = 4096


def latents(n: int, latent_dim: int, seed: int, device: torch.device | str = "cpu") -> Tensor:
    """z ~ N(0, I_P) of shape (n, P) from a CPU generator seeded with ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, latent_dim, generator=gen).to(device)


def sample_generator(generator: nn.Module, n: int, latent_dim: int, *, seed: int = 0, mc_dropout: bool = False,
                     device: torch.device | str | None = None, batch: int = SAMPLE_BATCH) -> Tensor:
    """``n`` samples (float32) of ``generator`` from latents seeded with ``seed``."""
    return torch.cat(list(iter_samples(generator, n, latent_dim, seed=seed, mc_dropout=mc_dropout, device=device,
                                       batch=batch)))


def iter_samples(generator: nn.Module, n: int, latent_dim: int, *, seed: int = 0, mc_dropout: bool = False,
                 device: torch.device | str | None = None, batch: int = SAMPLE_BATCH) -> Iterator[Tensor]:
    """The samples of :func:`sample_generator` in batches of at most ``batch``, so any ``n`` can be
    written out without holding all of them in memory. The latents are always drawn in blocks of
    SAMPLE_BATCH (a seed's latents must not depend on how the output is cut), then split."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    device = torch.device(device) if device is not None else next(generator.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    mode = mc_dropout_mode(generator) if mc_dropout else _eval_mode(generator)
    rng = torch.random.fork_rng(devices=[device] if device.type == "cuda" else []) if mc_dropout else contextlib.nullcontext()
    with mode, rng, torch.no_grad():
        if mc_dropout:
            torch.manual_seed(seed)
        for start in range(0, n, SAMPLE_BATCH):
            z = torch.randn(min(SAMPLE_BATCH, n - start), latent_dim, generator=gen).to(device)
            for part in z.split(batch):
                yield generator(part).float()


@contextlib.contextmanager
def _eval_mode(module: nn.Module):
    with preserved_training_flags(module):
        module.eval()
        yield module
