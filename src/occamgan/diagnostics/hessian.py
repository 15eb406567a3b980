"""Sharpness: the top eigenvalues of the Hessian of a player's loss w.r.t. its parameters
(Filippone & Linhard 2025, Sec. "Flat minima" and the Gaussian experiment; docs/methods.md sections 3-4).

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

Three eigenvalues can be measured (``METHODS``), each keyed by its own name in the results:

- ``"lanczos_top"`` -> ``top_eigenvalue``: the largest *algebraic* eigenvalue (Lanczos, ``which="LA"``),
  averaged over the batches as above (occamgan's default);
- ``"power_abs"`` -> ``top_abs_eigenvalue``: the eigenvalue of largest *magnitude*, with its sign,
  by plain power iteration (the Rayleigh quotient of the last iterate) on ONE batch: the authors'
  protocol for the Gaussian experiment (their script calls hessian-eigenthings' power iteration,
  defaults 20 steps and a relative tolerance of 1e-4, on the last training batch of 50 points
  paired with freshly drawn latents). Where the Hessian's most negative eigenvalue outweighs its
  largest one, this is that negative eigenvalue; where the two magnitudes are close, 20 steps
  have not converged (the result says whether they did);
- ``"smallest"`` -> ``bottom_eigenvalue``: the smallest algebraic eigenvalue (Lanczos, ``which="SA"``),
  averaged over the batches like the top one: negative values say that the measured point is a
  saddle of L_G, not a minimum.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh
from torch import Tensor, nn

from ..bayes.mc_dropout import preserved_training_flags

PLAYERS = ("g", "d")
REDUCTIONS = ("eigenvalues", "hessian")
#: what is measured -> the result key (a "_d" suffix for the critic's loss)
METHODS = {"lanczos_top": "top_eigenvalue", "power_abs": "top_abs_eigenvalue", "smallest": "bottom_eigenvalue"}
#: hessian-eigenthings' power-iteration defaults, which the authors' Gaussian script used
POWER_ITERS, POWER_TOL = 20, 1e-4


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
    return _lanczos(hessian_operator(loss, params), k, "LA", seed, tol)


def bottom_hessian_eigenvalues(loss: Tensor, params: Sequence[Tensor], k: int = 1, seed: int = 0,
                               tol: float = 1e-6) -> list[float]:
    """The k smallest (algebraic) eigenvalues, ascending: Lanczos with ``which="SA"``, as
    :func:`top_hessian_eigenvalues` otherwise."""
    return _lanczos(hessian_operator(loss, params), k, "SA", seed, tol)


def _lanczos(op: LinearOperator, k: int, which: str, seed: int, tol: float) -> list[float]:
    n = op.shape[0]
    if k < 1 or k > n:
        raise ValueError(f"k must lie in [1, {n}] (the number of parameters), got {k}")
    descending = which == "LA"
    if n <= 2 * k + 1:
        return _dense(op, k, descending)
    v0 = np.random.default_rng(seed).standard_normal(n)
    try:
        values = eigsh(op, k=k, which=which, v0=v0, tol=tol, return_eigenvectors=False)
    except ArpackNoConvergence as exc:
        if len(exc.eigenvalues) < k:
            raise RuntimeError(f"Lanczos found {len(exc.eigenvalues)} of {k} Hessian eigenvalues") from None
        values = exc.eigenvalues
    return sorted((float(x) for x in values), reverse=descending)[:k]


def _dense(op: LinearOperator, k: int, descending: bool = True) -> list[float]:
    n = op.shape[0]
    h = np.stack([op.matvec(e) for e in np.eye(n)], axis=1)
    return sorted(np.linalg.eigvalsh(0.5 * (h + h.T)).tolist(), reverse=descending)[:k]


@dataclass(frozen=True)
class PowerResult:
    """Power iteration's estimate of the largest-magnitude eigenvalue (sign kept)."""

    value: float
    iterations: int
    converged: bool


def power_iteration(op: LinearOperator, iters: int = POWER_ITERS, tol: float = POWER_TOL,
                    seed: int = 0) -> PowerResult:
    """Plain power iteration v <- H v / ||H v|| from a seeded Gaussian start: the estimate is the
    Rayleigh quotient v^T H v of the current unit vector, and the loop stops when it changes by
    at most ``tol`` relative to itself (or after ``iters`` products). It converges to the
    eigenvalue of largest |lambda| at the rate |lambda_2 / lambda_1| (no shift, no deflation),
    as hessian-eigenthings' ``power_iteration`` without momentum, which the authors used."""
    if iters < 1:
        raise ValueError(f"iters must be >= 1, got {iters}")
    n = op.shape[0]
    v = np.random.default_rng(seed).standard_normal(n)
    v /= np.linalg.norm(v)
    previous = None
    for i in range(1, iters + 1):
        hv = op.matvec(v)
        value = float(v @ hv)
        norm = float(np.linalg.norm(hv))
        if norm == 0.0:  # v in the null space: H v = 0 exactly
            return PowerResult(0.0, i, True)
        if previous is not None and abs(value - previous) <= tol * abs(value):
            return PowerResult(value, i, True)
        previous, v = value, hv / norm
    return PowerResult(value, iters, False)


def largest_magnitude_eigenvalue(loss: Tensor, params: Sequence[Tensor], iters: int = POWER_ITERS,
                                 tol: float = POWER_TOL, seed: int = 0) -> PowerResult:
    """:func:`power_iteration` on the Hessian of ``loss`` w.r.t. ``params``."""
    return power_iteration(hessian_operator(loss, params), iters=iters, tol=tol, seed=seed)


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
    return batch_eigenvalues(game, batches, "lanczos_top", k=k, player=player, seed=seed, generator=generator,
                             reduce=reduce, tol=tol)


def batch_eigenvalues(game: Any, batches: Iterable[Tensor], method: str = "lanczos_top", k: int = 1,
                      player: str = "g", seed: int = 0, generator: nn.Module | None = None,
                      reduce: str = "eigenvalues", tol: float = 1e-6, power_iters: int = POWER_ITERS,
                      power_tol: float = POWER_TOL, info: dict[str, Any] | None = None) -> list[float]:
    """Hessian eigenvalues of one player's loss over ``batches`` by ``method`` (see ``METHODS``):
    the k largest (descending), the k smallest (ascending), or, for ``"power_abs"``, the one of
    largest magnitude (a list of one). Batches, latents, start vectors and ``reduce`` as in
    :func:`top_eigenvalues`. ``info`` (a dict) receives power iteration's iteration count and
    whether every batch converged."""
    if reduce not in REDUCTIONS:
        raise ValueError(f"reduce must be one of {REDUCTIONS}, got {reduce!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {tuple(METHODS)}, got {method!r}")
    g = game.generator if generator is None else generator
    runs: list[PowerResult] = []

    def measure(loss: Tensor, params: list[Tensor], s: int) -> list[float]:
        if method == "lanczos_top":
            return top_hessian_eigenvalues(loss, params, k=k, seed=s, tol=tol)
        if method == "smallest":
            return bottom_hessian_eigenvalues(loss, params, k=k, seed=s, tol=tol)
        result = largest_magnitude_eigenvalue(loss, params, iters=power_iters, tol=power_tol, seed=s)
        runs.append(result)
        return [result.value]

    results, losses = [], []
    with _measurable(game, g):
        for i, real in enumerate(batches):
            real = real.to(game.device)
            z = game.sample_latent(real.shape[0], generator=torch.Generator().manual_seed(seed + i))
            loss, params = player_loss(game, real, z, player, generator=g)
            if reduce == "eigenvalues":
                results.append(measure(loss, params, seed + i))
            else:
                losses.append(loss)
        if not results and not losses:
            raise ValueError("batch_eigenvalues needs at least one batch")
        if losses:  # the Hessian of the mean loss is the mean Hessian
            results.append(measure(torch.stack(losses).mean(), params, seed))
    if info is not None and runs:
        info["power_iterations"] = max(r.iterations for r in runs)
        info["power_converged"] = all(r.converged for r in runs)
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


def last_training_batch(data: Tensor, sampler_state: dict[str, Any], batch_size: int) -> Tensor:
    """The last batch that a :class:`~occamgan.data.base.BatchSampler` with this state handed
    out (its current permutation up to its position), i.e. the last training batch of a run from
    the ``sampler`` entry of its checkpoint; single-process runs."""
    size = min(batch_size, data.shape[0])
    pos = int(sampler_state["pos"])
    if pos < size:
        raise ValueError(f"the sampler has handed out no batch of {size} from its current permutation (position {pos})")
    return data[sampler_state["perm"][pos - size:pos]]


def sharpness(game: Any, data: Tensor, batch_size: int, n_batches: int = 4, k: int = 1, seed: int = 0,
              players: Sequence[str] = ("g",), generator: nn.Module | None = None,
              reduce: str = "eigenvalues", methods: Sequence[str] = ("lanczos_top",),
              last_batch: Tensor | None = None, power_iters: int = POWER_ITERS,
              power_tol: float = POWER_TOL) -> dict[str, Any]:
    """Sharpness metrics of a trained game, one key per method (``METHODS``; a ``_d`` suffix for
    L_D): ``top_eigenvalue`` and, for k > 1, the list ``top_eigenvalues`` (descending);
    ``bottom_eigenvalue`` / ``bottom_eigenvalues`` (ascending), both over ``n_batches`` seeded
    batches; ``top_abs_eigenvalue`` (power iteration) on ONE batch: ``last_batch`` when given
    (the run's last training batch), else the first of the seeded batches, with
    ``top_abs_converged`` (1.0 or 0.0) and ``top_abs_iterations``."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ValueError(f"methods must be a non-empty selection of {tuple(METHODS)}, got {list(methods)}")
    batches = data_batches(data, batch_size, n_batches, seed)
    one = [last_batch if last_batch is not None else batches[0]]
    out: dict[str, Any] = {}
    for player in players:
        suffix = "" if player == "g" else "_d"
        for method in dict.fromkeys(methods):
            key = METHODS[method]
            if method == "power_abs":
                info: dict[str, Any] = {}
                values = batch_eigenvalues(game, one, method, player=player, seed=seed, generator=generator,
                                           power_iters=power_iters, power_tol=power_tol, info=info)
                out[f"{key}{suffix}"] = values[0]
                out[f"top_abs_converged{suffix}"] = float(info["power_converged"])
                out[f"top_abs_iterations{suffix}"] = float(info["power_iterations"])
                continue
            values = batch_eigenvalues(game, batches, method, k=k, player=player, seed=seed, generator=generator,
                                       reduce=reduce)
            out[f"{key}{suffix}"] = values[0]
            if k > 1:
                out[f"{key}s{suffix}"] = values
    return out
