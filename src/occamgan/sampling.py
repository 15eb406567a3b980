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
    SAMPLE_BATCH (a seed's latents must not depend on how the output is cut), then split.

    Every mode change is confined to one forward pass (eval or MC-dropout mode, no_grad, the
    forked RNG of the dropout masks, whose stream is carried from pass to pass), so nothing leaks
    to the caller between batches, nor when the caller stops iterating early."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    device = torch.device(device) if device is not None else next(generator.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    masks = _seeded_rng_state(seed, device) if mc_dropout else None
    for start in range(0, n, SAMPLE_BATCH):
        z = torch.randn(min(SAMPLE_BATCH, n - start), latent_dim, generator=gen).to(device)
        for part in z.split(batch):
            out, masks = _forward(generator, part, masks)
            yield out


def _forward(generator: nn.Module, z: Tensor, masks: dict | None) -> tuple[Tensor, dict | None]:
    """One pass of ``generator`` on ``z`` in eval mode (MC-dropout mode when ``masks`` carries the
    state of the dropout-mask stream), without gradients; returns the output and the new state."""
    mode = mc_dropout_mode(generator) if masks is not None else _eval_mode(generator)
    with mode, torch.no_grad():
        if masks is None:
            return generator(z).float(), None
        with torch.random.fork_rng(devices=masks["devices"]):
            _set_rng(masks)
            out = generator(z).float()
            return out, _get_rng(masks["devices"])


def _seeded_rng_state(seed: int, device: torch.device) -> dict:
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        return _get_rng(devices)


def _get_rng(devices: list) -> dict:
    state = {"devices": devices, "cpu": torch.get_rng_state()}
    if devices:
        state["cuda"] = [torch.cuda.get_rng_state(d) for d in devices]
    return state


def _set_rng(state: dict) -> None:
    torch.set_rng_state(state["cpu"])
    for d, s in zip(state["devices"], state.get("cuda", [])):
        torch.cuda.set_rng_state(s, d)


@contextlib.contextmanager
def _eval_mode(module: nn.Module):
    with preserved_training_flags(module):
        module.eval()
        yield module
