"""Sharpness-aware minimisation around any torch optimiser: SAM (Foret et al. 2021, "Sharpness-
Aware Minimization for Efficiently Improving Generalization", Alg. 1) and adaptive SAM (Kwon et
al. 2021, "ASAM", Eq. 6-7 with T_w = |w| + eta; eta = 0 by default), as used for both GAN players
by Filippone & Linhard (2025, Sec. "Flat minima"; the paper's code uses adaptive=True and eta = 0;
docs/methods.md section 3).

One step, with g(psi) the gradient of the closure's loss:

    e = rho * T^2 g(psi) / ||T g(psi)||,   T = diag(|psi| + eta) (adaptive) or I (plain)
    psi <- base_step(psi, g(psi + e))

i.e. evaluate the gradient at the worst-case neighbour psi + e, move back to psi (an exact copy,
not psi + e - e), and let the base optimiser (Adam, SGD, ...) step with that gradient. The norm
runs over every parameter of every group; ``rho``, ``adaptive`` and ``eta`` may differ per group.

torch.optim conventions: :class:`SAM` is an :class:`~torch.optim.Optimizer` whose
``param_groups`` *are* the base optimiser's (so LR schedulers and warm-up act on both), ``step``
takes a closure that re-evaluates the loss and calls ``backward`` (it is called exactly twice:
two gradient evaluations per step), and ``state_dict``/``load_state_dict`` round-trip the base
optimiser's state plus ``rho``/``adaptive`` in the groups.

Normalisation running statistics (BatchNorm) update on the first pass only: the second closure
call runs inside :func:`~occamgan.models.running_stats.running_stats_frozen`, which restores the
running buffers of every normalisation layer that ran, so SAM needs no reference to the modules
(the second pass is a probe of the loss at psi + e, not a new batch).
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor
from torch.optim import Optimizer

from ..models.running_stats import running_stats_frozen

__all__ = ["SAM", "running_stats_frozen", "wrap_sam"]

Closure = Callable[[], Tensor]


class SAM(Optimizer):
    """(Adaptive) SAM wrapping a built optimiser ``base_optimizer``.

    Args:
        base_optimizer: any torch optimiser; its parameter groups become SAM's.
        rho: neighbourhood radius (> 0); the paper's code uses 0.05 for plain SAM and larger radii
            (e.g. 0.5) for ASAM, whose perturbation is relative to |psi|.
        adaptive: ASAM (T = |psi| + eta) instead of SAM (T = I).
        eps: added to the gradient norm so that a zero gradient gives a zero perturbation.
        eta: ASAM's offset in T = |psi| + eta (Kwon et al. 2021; their default 0.01). With
            eta = 0 (the default here, today's behaviour and the Occam paper's code) a weight that
            is exactly 0 is never perturbed, and small weights barely are; with eta > 0 the
            neighbourhood {e : ||T^-1 e|| <= rho} has semi-axes rho (|psi_i| + eta) >= rho eta.
            Ignored without ``adaptive`` (T = I).
            Kwon et al.'s code applies T only to weights and uses T = I for biases; here T acts
            on every parameter of an adaptive group (put biases in a group with
            ``adaptive=False`` to follow their code).
    """

    def __init__(self, base_optimizer: Optimizer, rho: float = 0.05, adaptive: bool = False, eps: float = 1e-12,
                 eta: float = 0.0):
        if rho < 0:
            raise ValueError(f"SAM radius rho must be >= 0, got {rho}")
        if eta < 0:
            raise ValueError(f"ASAM offset eta must be >= 0, got {eta}")
        if isinstance(base_optimizer, SAM):
            raise TypeError("SAM cannot wrap another SAM")
        self.base_optimizer = base_optimizer
        self.eps = eps
        defaults = {**base_optimizer.defaults, "rho": rho, "adaptive": adaptive, "eta": eta}
        # Optimizer.__init__ re-adds the base groups through the param_groups property below, so
        # the very same group dicts (now carrying rho/adaptive/eta) are shared by both optimisers.
        super().__init__(list(base_optimizer.param_groups), defaults)

    # Shared groups: a scheduler changing SAM's lr changes the base optimiser's, and a
    # base.load_state_dict (which builds new group dicts) cannot leave SAM with stale ones.
    @property
    def param_groups(self) -> list[dict[str, Any]]:  # type: ignore[override]
        return self.base_optimizer.param_groups

    @param_groups.setter
    def param_groups(self, groups: list[dict[str, Any]]) -> None:
        self.base_optimizer.param_groups = groups

    # ------------------------------------------------------------------ the two passes
    @torch.no_grad()
    def perturb(self) -> None:
        """psi <- psi + e(psi) from the current ``.grad`` (the gradient at psi); saves psi."""
        scaled, transform = {}, {}
        for group in self.param_groups:
            adaptive = group.get("adaptive", self.defaults["adaptive"])
            eta = group.get("eta", self.defaults["eta"])
            for p in group["params"]:
                if p.grad is not None:
                    if adaptive:  # T = diag(|psi| + eta)
                        transform[p] = p.abs() + eta if eta else p.abs()
                        scaled[p] = p.grad * transform[p]
                    else:
                        scaled[p] = p.grad
        if not scaled:
            return
        norms = [torch.linalg.vector_norm(t).to(next(iter(scaled)).device) for t in scaled.values()]
        norm = torch.linalg.vector_norm(torch.stack(norms))
        for group in self.param_groups:
            scale = group.get("rho", self.defaults["rho"]) / (norm + self.eps)
            for p in group["params"]:
                if p not in scaled:
                    continue
                saved = self.state[p].get("psi")
                if saved is None or saved.shape != p.shape:
                    saved = self.state[p]["psi"] = torch.empty_like(p)
                saved.copy_(p)
                # e = rho T^2 g / ||T g||: scaled[p] = T g, so T (T g) = T^2 g
                e = scaled[p] * transform[p] if p in transform else scaled[p]
                p.add_(e * scale.to(p.device))
                self.state[p]["perturbed"] = True

    @torch.no_grad()
    def restore(self) -> None:
        """psi + e -> psi (exact copy of the saved weights); ``.grad`` is left untouched."""
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state.get(p)
                if state and state.get("perturbed"):
                    p.copy_(state["psi"])
                    state["perturbed"] = False

    @torch.no_grad()
    def step(self, closure: Closure | None = None) -> Tensor:  # type: ignore[override]
        """One SAM step; returns the loss at psi (from the first closure call).

        The closure must compute the loss and call ``backward()``; gradients of this optimiser's
        parameters are cleared before each call, so it need not zero them itself (it may).
        Feed it the same real batch and latents both times (dropout masks and likelihood-
        relaxation noise may be drawn afresh).
        """
        if closure is None:
            raise ValueError("SAM.step needs a closure: it evaluates the gradient at psi and at psi + e")
        closure = torch.enable_grad()(closure)
        self.zero_grad(set_to_none=True)
        loss = closure()
        self.perturb()
        self.zero_grad(set_to_none=True)
        try:
            with running_stats_frozen():
                closure()
        finally:
            self.restore()
        self.base_optimizer.step()
        return loss

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:  # type: ignore[override]
        """The base optimiser's state dict; its groups carry ``rho``, ``adaptive`` and ``eta``. SAM's own
        buffers (the saved psi) only live within a step and are not part of it."""
        return self.base_optimizer.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:  # type: ignore[override]
        self.base_optimizer.load_state_dict(state_dict)
        for group in self.param_groups:  # a plain optimiser's state dict lacks SAM's keys
            group.setdefault("rho", self.defaults["rho"])
            group.setdefault("adaptive", self.defaults["adaptive"])
            group.setdefault("eta", self.defaults["eta"])

    def __repr__(self) -> str:
        rho, adaptive, eta = self.defaults["rho"], self.defaults["adaptive"], self.defaults["eta"]
        extra = f", eta={eta}" if adaptive and eta else ""
        return f"{'ASAM' if adaptive else 'SAM'}(rho={rho}{extra}, base={self.base_optimizer!r})"


def wrap_sam(optimizer: Optimizer, rho: float, adaptive: bool, eta: float = 0.0) -> Optimizer:
    """``optimizer`` wrapped in (A)SAM with radius ``rho`` (and ASAM's ``eta``), or unchanged when
    ``rho == 0``."""
    if rho == 0:
        return optimizer
    return SAM(optimizer, rho=rho, adaptive=adaptive, eta=eta)
