"""Sharpness: the top eigenvalues of the Hessian of a player's loss w.r.t. its parameters
(Filippone & Linhard 2025, Sec. "Flat minima" and the Gaussian experiment; methods.md sections 3-4).

Flat minima correspond to short descriptions of the parameters (minimum description length), so
a small top eigenvalue of the Hessian of L_G at the trained (EMA) generator is the Occam signal the
paper reports next to the score. The Hessian is never formed: Hessian-vector products come from
double backward (Pearlmutter 1994: Hv = grad(<grad L, v>)), and ARPACK's implicitly restarted
Lanczos (``scipy.sparse.linalg.eigsh`` on a ``LinearOperator``) finds the k largest (algebraic)
eigenvalues. The results are averaged over several data batches.

What is measured, so that runs with different regularisers are comparable: the objective's own
loss (``Game.objective_generator_loss`` / ``objective_discriminator_loss``) on one fixed batch of
real data and latents, with the networks in eval mode (dropout off, BatchNorm on running
statistics) and without the Occam terms (no likelihood-relaxation noise, no gradient-norm or R1/R2
penalty, no MC averaging). The graph is built once per batch, so every product sees the same
function (WGAN-GP's random interpolation included).

Two ways to average over batches (``reduce``): ``"eigenvalues"`` (default) averages the top-k
eigenvalues of each batch's Hessian, as the paper's code does for images; ``"hessian"`` takes the
top-k eigenvalues of the batch-averaged Hessian (the Hessian of the mean loss over the batches),
as its script for the 2-D Gaussian experiment does over the whole 200-point set. The first is
never smaller than the second (the top eigenvalue is convex in the matrix).
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh
from torch import Tensor, nn

from ..bayes.mc_dropout import preserved_training_flags

PLAYERS = ("g", "d")
REDUCTIONS = ("eigenvalues", "hessian")


# ---------------------------------------------------------------------- linear algebra
def hessian_operator(loss: Tensor, params: Sequence[Tensor]) -> LinearOperator:
    """The Hessian of the scalar ``loss`` w.r.t. ``params`` as a float64 SciPy operator.

    One backward with ``create_graph=True`` builds grad L; each product is then one more backward
    through that graph, ``H v = d<grad L, v>/dpsi``."""
    params = list(params)
    grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
    # gradients that do not depend on the parameters (e.g. of a last bias) have zero Hessian rows
    live = [i for i, g in enumerate(grads) if g is not None and g.requires_grad]
    sizes = [p.numel() for p in params]
    offsets = np.cumsum([0] + sizes)
    n = int(offsets[-1])
    ref = params[0]

    def matvec(v: np.ndarray) -> np.ndarray:
        v = torch.as_tensor(np.asarray(v, dtype=np.float64).reshape(-1), device=ref.device)
        out = np.zeros(n)
        if not live:
            return out
        vs = [v[offsets[i]:offsets[i + 1]].view_as(params[i]).to(params[i].dtype) for i in live]
        hv = torch.autograd.grad([grads[i] for i in live], params, grad_outputs=vs,
                                 retain_graph=True, allow_unused=True)
        for i, h in enumerate(hv):
            if h is not None:
                out[offsets[i]:offsets[i + 1]] = h.detach().reshape(-1).double().cpu().numpy()
        return out

    return LinearOperator((n, n), matvec=matvec, rmatvec=matvec, dtype=np.float64)


def top_hessian_eigenvalues(loss: Tensor, params: Sequence[Tensor], k: int = 1, seed: int = 0,
                            tol: float = 1e-6) -> list[float]:
    """The k largest eigenvalues (descending) of the Hessian of ``loss`` w.r.t. ``params``.

    Lanczos (ARPACK) on Hessian-vector products from a seeded start vector; very small problems
    (n <= 2k + 1, where Lanczos has no room) are solved densely from n products."""
    op = hessian_operator(loss, params)
    n = op.shape[0]
    if k < 1 or k > n:
        raise ValueError(f"k must lie in [1, {n}] (the number of parameters), got {k}")
    if n <= 2 * k + 1:
        return _dense_top(op, k)
    v0 = np.random.default_rng(seed).standard_normal(n)
    try:
        values = eigsh(op, k=k, which="LA", v0=v0, tol=tol, return_eigenvectors=False)
    except ArpackNoConvergence as exc:
        if len(exc.eigenvalues) < k:
            raise RuntimeError(f"Lanczos found {len(exc.eigenvalues)} of {k} Hessian eigenvalues") from None
        values = exc.eigenvalues
    return sorted((float(x) for x in values), reverse=True)[:k]


def _dense_top(op: LinearOperator, k: int) -> list[float]:
    n = op.shape[0]
    h = np.stack([op.matvec(e) for e in np.eye(n)], axis=1)
    return sorted(np.linalg.eigvalsh(0.5 * (h + h.T)).tolist(), reverse=True)[:k]


# ---------------------------------------------------------------------- a game's players
@contextlib.contextmanager
def _measurable(game: nn.Module, generator: nn.Module) -> Iterator[None]:
    """Eval mode for every network and gradients enabled on the generator's weights (an EMA copy
    has them switched off); everything is restored afterwards."""
    stack = contextlib.ExitStack()
    with stack:
        for module in {id(m): m for m in (game, generator)}.values():
            stack.enter_context(preserved_training_flags(module))
            module.eval()
        frozen = [p for p in generator.parameters() if not p.requires_grad]
        for p in frozen:
            p.requires_grad_(True)
        try:
            with torch.enable_grad():
                yield
        finally:
            for p in frozen:
                p.requires_grad_(False)


def player_loss(game: Any, real: Tensor, z: Tensor, player: str = "g",
                generator: nn.Module | None = None) -> tuple[Tensor, list[Tensor]]:
    """(loss, parameters) of one player on one batch, as measured for sharpness (see module doc).

    ``generator`` replaces the game's generator (e.g. the EMA copy) without modifying the game."""
    if player not in PLAYERS:
        raise ValueError(f"player must be one of {PLAYERS}, got {player!r}")
    g = game.generator if generator is None else generator
    if player == "g":
        fake = g(z)
        if game.has_discriminator:
            with game.frozen_discriminator():
                loss = game.objective_generator_loss(real, fake)
        else:
            loss = game.objective_generator_loss(real, fake)
        return loss, list(g.parameters())
    if not game.has_discriminator:
        raise ValueError(f"objective {type(game.objective).__name__} has no discriminator: no Hessian of L_D")
    with torch.no_grad():
        fake = g(z)
    return game.objective_discriminator_loss(real, fake), game.discriminator_parameters()


def top_eigenvalues(game: Any, batches: Iterable[Tensor], k: int = 1, player: str = "g", seed: int = 0,
                    generator: nn.Module | None = None, reduce: str = "eigenvalues",
                    tol: float = 1e-6) -> list[float]:
    """The k largest Hessian eigenvalues of L_G (``player="g"``) or L_D (``"d"``) w.r.t. that
    player's parameters over ``batches`` (real data batches): the mean of each batch's top-k
    (``reduce="eigenvalues"``) or the top-k of the batch-mean Hessian (``reduce="hessian"``).

    Batch i is paired with latents z ~ N(0, I) drawn from a CPU ``torch.Generator`` seeded with
    ``seed + i``, and Lanczos starts from a vector seeded with ``seed`` (+ i per batch): the result
    is exactly reproducible. The networks are measured in eval mode and restored afterwards."""
    if reduce not in REDUCTIONS:
        raise ValueError(f"reduce must be one of {REDUCTIONS}, got {reduce!r}")
    g = game.generator if generator is None else generator
    results, losses = [], []
    with _measurable(game, g):
        for i, real in enumerate(batches):
            real = real.to(game.device)
            z = game.sample_latent(real.shape[0], generator=torch.Generator().manual_seed(seed + i))
            loss, params = player_loss(game, real, z, player, generator=g)
            if reduce == "eigenvalues":
                results.append(top_hessian_eigenvalues(loss, params, k=k, seed=seed + i, tol=tol))
            else:
                losses.append(loss)
        if not results and not losses:
            raise ValueError("top_eigenvalues needs at least one batch")
        if losses:  # the Hessian of the mean loss is the mean Hessian
            results.append(top_hessian_eigenvalues(torch.stack(losses).mean(), params, k=k, seed=seed, tol=tol))
    return np.mean(np.asarray(results), axis=0).tolist()


def data_batches(data: Tensor, batch_size: int, n_batches: int, seed: int) -> list[Tensor]:
    """``n_batches`` consecutive batches of ``batch_size`` points of seeded shuffles of ``data``
    (epochs without replacement, like training): 4 batches of 50 cover the 200-point Gaussian set
    exactly once."""
    gen = torch.Generator().manual_seed(seed)
    n, size = data.shape[0], min(batch_size, data.shape[0])
    per_epoch = n // size
    order = torch.cat([torch.randperm(n, generator=gen)[: per_epoch * size]
                       for _ in range(-(-n_batches // per_epoch))])
    return [data[order[i * size:(i + 1) * size]] for i in range(n_batches)]


def sharpness(game: Any, data: Tensor, batch_size: int, n_batches: int = 4, k: int = 1, seed: int = 0,
              players: Sequence[str] = ("g",), generator: nn.Module | None = None,
              reduce: str = "eigenvalues") -> dict[str, Any]:
    """Sharpness metrics of a trained game: ``top_eigenvalue`` (of L_G; of L_D as
    ``top_eigenvalue_d``) and, for k > 1, the lists ``top_eigenvalues`` / ``top_eigenvalues_d``."""
    batches = data_batches(data, batch_size, n_batches, seed)
    out: dict[str, Any] = {}
    for player in players:
        values = top_eigenvalues(game, batches, k=k, player=player, seed=seed, generator=generator, reduce=reduce)
        suffix = "" if player == "g" else "_d"
        out[f"top_eigenvalue{suffix}"] = values[0]
        if k > 1:
            out[f"top_eigenvalues{suffix}"] = values
    return out
