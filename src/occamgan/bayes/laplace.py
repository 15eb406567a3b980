"""The Laplace (MDL) evidence of a model over its weights psi, and the GAN surrogate of it
(MacKay 1992, "A practical Bayesian framework for backpropagation networks", Sec. 4, eq. 10;
Bishop 2006, Sec. 4.4.1 and eq. 3.86; Filippone & Linhard 2025, the flat-minimum argument of
Sec. "Flat minima"; docs/methods.md sections 3 and 9).

With a Gaussian prior psi ~ N(0, alpha^-1 I_k) and psi* a mode of the posterior, a second-order
expansion of the log posterior around psi* gives

    log p(X | M) ~ log p(X | psi*) + log p(psi*) + (k/2) log 2 pi - 1/2 log det H,
    H = grad^2 [-log p(X | psi) - log p(psi)] at psi* = grad^2 [-log p(X | psi*)] + alpha I.

The last three terms form the log Occam factor: the posterior volume of the weights relative to
the prior's. It is exact for a likelihood that is Gaussian in psi (Bayesian linear regression,
the test case). Sharp minima (large Hessian eigenvalues) pay a large Occam penalty, the
minimum-description-length reading of flat minima.

The Hessian comes from :func:`occamgan.diagnostics.hessian.hessian_operator` (double backward;
never formed unless k is small) and log det H from :mod:`occamgan.diagnostics.logdet`: dense
eigendecomposition up to ``DENSE_LIMIT`` weights, stochastic Lanczos quadrature beyond.

GANs have no likelihood in psi. :func:`gan_laplace_evidence` substitutes the generator loss
scaled by the number of data points, N L_G(psi), for -log p(X | psi), as the paper's
flat-minimum argument does; the result is labelled ``surrogate=True`` and is a comparison score
between generators trained on the same data with the same loss, not a log probability.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator
from torch import Tensor

from ..diagnostics.hessian import hessian_operator
from ..diagnostics.logdet import logdet_dense, logdet_slq

LOGDET_METHODS = ("auto", "dense", "slq")
#: "auto" diagonalises densely up to this many weights (k Hessian-vector products), else SLQ
DENSE_LIMIT = 1000
INDEFINITE = ("raise", "abs")


@dataclass
class LaplaceResult:
    """The Laplace evidence and its parts (nats, floats). ``log_likelihood`` is log p(X | psi*)
    (for a surrogate, -N L_G(psi*)); ``occam_factor`` = log p(psi*) + (k/2) log 2 pi - 1/2
    ``logdet``; ``grad_norm`` is |grad of the negative log posterior| at psi* (about 0 at a mode,
    where the approximation is taken); ``approximation`` says which objective stood in."""

    log_evidence: float
    log_likelihood: float
    log_prior: float
    logdet: float
    occam_factor: float
    k: int
    prior_precision: float
    logdet_method: str
    grad_norm: float
    surrogate: bool = False
    approximation: str = "laplace: Gaussian prior, Hessian of the negative log posterior"

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def gaussian_log_prior(params: Sequence[Tensor], precision: float) -> tuple[float, int]:
    """(log N(psi | 0, precision^-1 I_k), k) in float64."""
    k = sum(p.numel() for p in params)
    sq = sum(float((p.detach().double() ** 2).sum()) for p in params)
    return 0.5 * k * math.log(precision / (2 * math.pi)) - 0.5 * precision * sq, k


def _posterior_hessian(neg_log_lik: Tensor, params: Sequence[Tensor], precision: float) -> LinearOperator:
    h = hessian_operator(neg_log_lik, params)
    # the prior adds precision * I: exact and free, so it is not differentiated twice
    return LinearOperator(h.shape, matvec=lambda v: h.matvec(v) + precision * np.asarray(v).reshape(-1),
                          dtype=np.float64)


def _gradient_norm(neg_log_lik: Tensor, params: Sequence[Tensor], precision: float) -> float:
    grads = torch.autograd.grad(neg_log_lik, params, retain_graph=True, allow_unused=True)
    total = 0.0
    for p, g in zip(params, grads):
        g = precision * p.detach() if g is None else g.detach() + precision * p.detach()
        total += float((g.double() ** 2).sum())
    return math.sqrt(total)


def laplace_evidence(neg_log_lik: Tensor, params: Sequence[Tensor], *, prior_precision: float,
                     logdet: str = "auto", probes: int = 30, lanczos_steps: int = 30, seed: int = 0,
                     indefinite: str = "raise", surrogate: bool = False,
                     approximation: str | None = None) -> LaplaceResult:
    """The Laplace evidence at ``params`` = psi* from the scalar ``neg_log_lik`` = -log p(X | psi*),
    computed with its autograd graph, and the prior precision alpha (see module doc).

    ``logdet``: "dense" (k products, eigendecomposition), "slq" (``probes`` x ``lanczos_steps``
    products, seeded by ``seed``) or "auto" (dense up to ``DENSE_LIMIT`` weights). A Hessian that
    is not positive definite (psi* not a minimum) raises, unless ``indefinite="abs"``, which uses
    log |det H| instead and is an extra approximation on top."""
    if logdet not in LOGDET_METHODS:
        raise ValueError(f"logdet must be one of {LOGDET_METHODS}, got {logdet!r}")
    if indefinite not in INDEFINITE:
        raise ValueError(f"indefinite must be one of {INDEFINITE}, got {indefinite!r}")
    if not prior_precision > 0:
        raise ValueError(f"prior_precision must be positive, got {prior_precision}")
    params = list(params)
    log_prior, k = gaussian_log_prior(params, prior_precision)
    grad_norm = _gradient_norm(neg_log_lik, params, prior_precision)
    h = _posterior_hessian(neg_log_lik, params, prior_precision)
    method = ("dense" if k <= DENSE_LIMIT else "slq") if logdet == "auto" else logdet
    absolute = indefinite == "abs"
    if method == "dense":
        value = logdet_dense(h, absolute=absolute)
    else:
        value = logdet_slq(h, probes=probes, lanczos_steps=lanczos_steps, seed=seed, absolute=absolute)
    log_lik = -float(neg_log_lik.detach())
    occam = log_prior + 0.5 * k * math.log(2 * math.pi) - 0.5 * value
    label = approximation or LaplaceResult.approximation
    if absolute:
        label += "; log |det H| (indefinite Hessians allowed)"
    return LaplaceResult(log_evidence=log_lik + occam, log_likelihood=log_lik, log_prior=log_prior, logdet=value,
                         occam_factor=occam, k=k, prior_precision=float(prior_precision), logdet_method=method,
                         grad_norm=grad_norm, surrogate=surrogate, approximation=label)


def gan_laplace_evidence(generator_loss: Tensor, params: Sequence[Tensor], *, n_data: int, prior_precision: float,
                         **kwargs: Any) -> LaplaceResult:
    """The surrogate Laplace evidence of a GAN generator: :func:`laplace_evidence` with
    N L_G(psi*) in place of -log p(X | psi*), ``generator_loss`` the mean generator loss on a
    batch (with its graph; e.g. from ``diagnostics.hessian.player_loss``) and N = ``n_data``.

    This is the paper's flat-minimum argument made numeric: the Hessian is N times the loss's
    Hessian plus the prior precision. The result carries ``surrogate=True``; keyword arguments
    (``logdet``, ``probes``, ``lanczos_steps``, ``seed``, ``indefinite``) go to
    :func:`laplace_evidence`."""
    if int(n_data) != n_data or n_data < 1:
        raise ValueError(f"n_data must be a positive integer, got {n_data!r}")
    return laplace_evidence(n_data * generator_loss, params, prior_precision=prior_precision, surrogate=True,
                            approximation="GAN surrogate: N * L_G(psi) in place of -log p(X | psi), "
                                          "Gaussian prior, Laplace expansion", **kwargs)
