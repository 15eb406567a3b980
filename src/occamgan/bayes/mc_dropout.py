"""MC dropout (Gal & Ghahramani 2016, "Dropout as a Bayesian approximation", Sec. 3), as used in
GANs by Filippone & Linhard (2025, Sec. "Approximate inference"; docs/methods.md section 3).

Dropout layers (rate ``model.dropout``) stay stochastic when sampling, so that the generator
weights are integrated over the approximate posterior that dropout defines: at sampling time the
network is in eval mode (BatchNorm uses its running statistics) while every dropout layer is in
training mode; :func:`occamgan.sampling.sample_generator` draws samples that way. Dropout masks are drawn element-wise (Dropout) or per sample and channel
(Dropout2d), so in one batched forward every sample sees its own mask.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

from torch import nn

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
