"""Gradients and mixed Hessian-vector products of a two-player game by double backward.

For a loss f(x, y) of the players' parameters x and y, first take the gradient with a graph,
``g_a = grad_a f`` (``create_graph=True``); then for a vector v in the space of a

    D_ba v = d/db <g_a, v> = (d^2 f / db da) v

is one more backward pass (Pearlmutter 1994, "Fast exact multiplication by the Hessian"; as used
for CGD by Schäfer & Anandkumar 2019). Only the mixed blocks are ever needed: CGD drops
D_xx and D_yy (docs/methods.md section 7).

Parameters a loss does not reach, and gradient entries that are constants (a WGAN critic's last
bias has gradient mean(1) - mean(1) = 0 with no graph behind it), contribute zeros: outputs
without a graph are skipped and unused inputs are zero-filled, so every product is a full vector.
Vectors are flat (all parameters of a player concatenated in ``parameters()`` order).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

Params = Sequence[nn.Parameter]


def flatten(tensors: Sequence[Tensor]) -> Tensor:
    """Concatenate tensors into one flat vector (detached)."""
    return torch.cat([t.detach().reshape(-1) for t in tensors])


def unflatten(vector: Tensor, like: Sequence[Tensor]) -> list[Tensor]:
    """Split a flat vector into views shaped like ``like``."""
    return [v.view_as(t) for v, t in zip(vector.split([t.numel() for t in like]), like)]


def gradients_with_graph(loss: Tensor, params: Params) -> list[Tensor]:
    """``grad_params loss`` with ``create_graph=True``, zeros for parameters ``loss`` ignores."""
    return list(
        torch.autograd.grad(
            loss, list(params), create_graph=True, allow_unused=True, materialize_grads=True
        )
    )


def mixed_product(grad_a: Sequence[Tensor], wrt: Params, vector: Tensor) -> Tensor:
    """``D_ba v = d/db <grad_a f, v>`` as a flat vector in the space of ``wrt`` (= b).

    ``grad_a`` must come from :func:`gradients_with_graph`; ``vector`` is flat in the space of a.
    The graph is retained, so the product can be taken again with other vectors.
    """
    pairs = [(g, v) for g, v in zip(grad_a, unflatten(vector, grad_a)) if g.requires_grad]
    if not pairs:  # no entry of grad_a depends on anything: the block is zero
        return vector.new_zeros(sum(p.numel() for p in wrt))
    outputs, grad_outputs = zip(*pairs)
    products = torch.autograd.grad(
        outputs, list(wrt), grad_outputs, retain_graph=True, allow_unused=True, materialize_grads=True
    )
    return torch.cat([p.reshape(-1) for p in products])
