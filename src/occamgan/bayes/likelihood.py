"""The relaxed likelihood of a generator and its log joint in the latent z (Filippone & Linhard
2025, Sec. "Likelihood relaxation"; docs/methods.md sections 1 and 9).

The model replaces the generator's Dirac likelihood x = G(z; psi) by a Gaussian of width sigma,

    p(x | z, psi) = N(x | G(z; psi), sigma^2 I_D),    p(z) = N(z | 0, I_P),

with x and G(z) flattened to D numbers. Every evidence estimator of this package (importance
sampling, HMC-based AIS, BDMC) needs only three things from it, all computed here:

- ``log_likelihood``: log N(x | G(z), sigma^2 I) for latents of shape (n, K, P), i.e. K chains for
  each of n points, in ONE batched generator forward over the n * K latents;
- ``log_prior``: log N(z | 0, I_P), and its gradient -z (analytic, no autograd);
- ``log_likelihood_and_grad``: the likelihood and its gradient in z by one backward.

Precision: the generator runs in its own dtype (float32 networks stay float32, which is where
the time goes), but the residual x - G(z), its squared norm and every log density are formed in
float64. With sigma = 0.01 and D = 4096 the scaled squared norm ||x - G||^2 / sigma^2 reaches
1e7, where float32's 7 digits would leave errors of a nat or more in each log-weight.

Mode: the generator is evaluated in eval mode (dropout off, BatchNorm on its running statistics)
so that each latent's output depends on that latent alone, which both the model and the batching
over chains require; :func:`evaluation_mode` restores the caller's flags on exit.
"""
from __future__ import annotations

import contextlib
import math
from typing import Iterator

import torch
from torch import Tensor, nn

from .mc_dropout import preserved_training_flags

LOG_2PI = math.log(2.0 * math.pi)


@contextlib.contextmanager
def evaluation_mode(generator: nn.Module) -> Iterator[nn.Module]:
    """Eval mode for ``generator`` within the block, every submodule's flag restored after."""
    with preserved_training_flags(generator):
        generator.eval()
        yield generator


def generator_dtype(generator: nn.Module) -> torch.dtype:
    """The floating dtype of the generator's first parameter (float32 for a parameterless one)."""
    for p in generator.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.get_default_dtype()


def flatten_points(x: Tensor) -> Tensor:
    """(n, ...) data -> (n, D) float64: the likelihood treats every sample as one D-vector."""
    return x.reshape(x.shape[0], -1).to(torch.float64)


def log_prior(z: Tensor) -> Tensor:
    """log N(z | 0, I_P) over the last axis, in float64."""
    z = z.to(torch.float64)
    return -0.5 * (z * z).sum(-1) - 0.5 * z.shape[-1] * LOG_2PI


def gaussian_log_density(x: Tensor, mean: Tensor, sigma: float) -> Tensor:
    """log N(x | mean, sigma^2 I) over the last axis; ``x`` (n, 1, D) float64, ``mean`` (n, K, D)."""
    return _log_density_and_residual(x, mean, sigma)[0]


def _log_density_and_residual(x: Tensor, mean: Tensor, sigma: float) -> tuple[Tensor, Tensor]:
    if mean.shape[-1] != x.shape[-1]:
        raise ValueError(f"the generator's samples have {mean.shape[-1]} numbers but the data points {x.shape[-1]}")
    residual = x - mean.to(torch.float64)
    d = x.shape[-1]
    ll = -0.5 * (residual * residual).sum(-1) / sigma ** 2 - d * (math.log(sigma) + 0.5 * LOG_2PI)
    return ll, residual


def decode(generator: nn.Module, z: Tensor) -> Tensor:
    """G(z) for latents (n, K, P), returned as (n, K, D) in the generator's dtype."""
    n, k, p = z.shape
    out = generator(z.reshape(n * k, p))
    return out.reshape(n, k, -1)


def log_likelihood(generator: nn.Module, z: Tensor, x: Tensor, sigma: float) -> Tensor:
    """log N(x_i | G(z_ik), sigma^2 I) for latents ``z`` (n, K, P) and points ``x`` (n, ...):
    an (n, K) float64 tensor, one batched forward without a graph (docs/methods.md section 9)."""
    _check_shapes(z, x)
    xf = flatten_points(x).unsqueeze(1)
    with torch.no_grad(), evaluation_mode(generator):
        return gaussian_log_density(xf, decode(generator, z.to(generator_dtype(generator))), sigma)


def log_likelihood_and_grad(generator: nn.Module, z: Tensor, x: Tensor, sigma: float) -> tuple[Tensor, Tensor]:
    """(log N(x | G(z), sigma^2 I), its gradient in z): (n, K) float64 and (n, K, P) in z's dtype,
    for latents ``z`` (n, K, P) and points ``x`` (n, ...). The caller is responsible for eval
    mode (:func:`evaluation_mode`); annealing loops enter it once rather than per step."""
    _check_shapes(z, x)
    ll, grad = flat_likelihood_and_grad(generator, z.to(generator_dtype(generator)), flatten_points(x).unsqueeze(1),
                                        sigma)
    return ll, grad.to(z.dtype)


def flat_likelihood_and_grad(generator: nn.Module, z: Tensor, xf: Tensor, sigma: float) -> tuple[Tensor, Tensor]:
    """:func:`log_likelihood_and_grad` for points already flattened to (n, 1, D) float64 and
    latents already in the generator's dtype (the annealing loop's hot path).

    One forward and one backward through the generator. The gradient of the log density with
    respect to the generator's output, (x - G(z)) / sigma^2, is formed directly, so autograd
    runs through the network alone (not through the float64 residual) and w.r.t. z only (no
    parameter's ``.grad`` is touched). Chains and points are independent, so a single backward
    with that output gradient gives every chain's own gradient."""
    with torch.enable_grad():
        zg = z.detach().requires_grad_(True)
        out = decode(generator, zg)
        ll, residual = _log_density_and_residual(xf, out.detach(), sigma)
        (grad,) = torch.autograd.grad(out, zg, grad_outputs=(residual / sigma ** 2).to(out.dtype))
    return ll, grad


def log_joint(generator: nn.Module, z: Tensor, x: Tensor, sigma: float) -> Tensor:
    """log N(x | G(z), sigma^2 I) + log N(z | 0, I): the unnormalised log posterior of z, (n, K)."""
    return log_likelihood(generator, z, x, sigma) + log_prior(z)


def log_joint_and_grad(generator: nn.Module, z: Tensor, x: Tensor, sigma: float) -> tuple[Tensor, Tensor]:
    """(log joint (n, K) float64, its gradient in z (n, K, P)); eval mode is handled here."""
    with evaluation_mode(generator):
        ll, grad = log_likelihood_and_grad(generator, z, x, sigma)
    return ll + log_prior(z), grad - z


def _check_shapes(z: Tensor, x: Tensor) -> None:
    if z.dim() != 3:
        raise ValueError(f"z must have shape (points, chains, latent_dim), got {tuple(z.shape)}")
    if x.shape[0] != z.shape[0]:
        raise ValueError(f"z has {z.shape[0]} points but x has {x.shape[0]}")
