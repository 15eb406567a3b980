"""One evaluation of the critic on a real and a fake batch, shared by a loss and its penalties.

A discriminator loss needs ``d_real = D(x)`` and ``d_fake = D(x~)``; gradient penalties at those
very points (WGAN-div at both, Wu et al. 2018, Eq. 11/12; R1 at real and R2 at fake points,
Mescheder et al. 2018, Eq. 9/10) need ``grad_x D`` with a graph. Instead of running the critic
again inside each penalty, a :class:`CriticPass` runs it once per batch, on inputs that require
grad at the points some penalty asked for, and takes ``grad_x sum D(x)`` from those very outputs
(``torch.autograd.grad`` with ``create_graph=True``), as the WGAN-div paper's code does. The
penalty is the same function of the critic's parameters; the critic sees each batch once
(BatchNorm running statistics and spectral-norm power iterations advance once per batch, as in
the authors' loop), and a penalty sees the same dropout masks as the loss.

Penalties see *detached* inputs: their gradient w.r.t. the generator is zero, which zero-sum
competitive rules rely on. A batch that already carries a graph (the fakes of ``Game.losses``,
where L_D is differentiated w.r.t. G) therefore does not share its pass: the input gradient
there comes from a separate forward on the detached batch, as does any point the pass does not
hold (WGAN-GP's interpolates). Points nobody asked for are evaluated without ``requires_grad``,
so objectives without penalties pay nothing.
"""
from __future__ import annotations

from typing import Callable, Collection

import torch
from torch import Tensor

Critic = Callable[[Tensor], Tensor]

#: the points of a pass at which a penalty may take input gradients
POINTS = ("real", "fake")


class CriticPass:
    """The critic on one real and one fake batch: outputs and input gradients, computed on first
    use and cached. Callable like the critic itself (a call runs a new forward), so penalties
    written against a plain critic accept it; :func:`input_gradient` reads the cache.

    Args:
        critic: maps a batch to outputs of shape ``(batch,)``.
        real, fake: the two batches (stacked MC-dropout passes are one batch each).
        grad_at: the points (``"real"``, ``"fake"``) whose input gradient a penalty will ask for.
        critic_at_gradient: the critic used wherever an input gradient is taken (the shared
            points and new forwards such as WGAN-GP's interpolates); the Game passes its
            float32, eager critic, since that gradient is differentiated again (``train.amp``,
            ``train.compile``).
    """

    def __init__(self, critic: Critic, real: Tensor, fake: Tensor, grad_at: Collection[str] = (),
                 critic_at_gradient: Critic | None = None):
        unknown = set(grad_at) - set(POINTS)
        if unknown:
            raise ValueError(f"grad_at must name points among {POINTS}, got {sorted(unknown)}")
        self.critic = critic
        self.critic_at_gradient = critic_at_gradient or critic
        self._given = {"real": real, "fake": fake}
        # only batches without a graph of their own can be made leaves (penalties see detached inputs)
        self._shared = {p for p in grad_at if not self._given[p].requires_grad}
        self._inputs = {p: x.detach().requires_grad_(True) if p in self._shared else x for p, x in self._given.items()}
        self._outputs: dict[str, Tensor] = {}
        self._grads: dict[str, Tensor] = {}

    def __call__(self, x: Tensor) -> Tensor:
        return self.critic(x)

    @property
    def real(self) -> Tensor:
        return self._inputs["real"]

    @property
    def fake(self) -> Tensor:
        return self._inputs["fake"]

    @property
    def d_real(self) -> Tensor:
        return self.output("real")

    @property
    def d_fake(self) -> Tensor:
        return self.output("fake")

    def output(self, point: str) -> Tensor:
        """D at ``point`` ("real" or "fake"), from the one forward of that batch."""
        if point not in self._outputs:
            critic = self.critic_at_gradient if point in self._shared else self.critic
            self._outputs[point] = critic(self._inputs[point])
        return self._outputs[point]

    def input_gradient(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(D(x), grad_x sum D(x))`` (gradient flattened per sample, with a graph): read from
        this pass when ``x`` is one of its shared batches, else from a new forward."""
        point = self._point_of(x)
        if point is None:
            return _input_gradient_by_new_forward(self.critic_at_gradient, x)
        if point not in self._grads:
            (grad,) = torch.autograd.grad(self.output(point).sum(), self._inputs[point], create_graph=True)
            self._grads[point] = grad.flatten(1)
        return self.output(point), self._grads[point]

    def _point_of(self, x: Tensor) -> str | None:
        for point in self._shared:
            if x is self._inputs[point] or x is self._given[point]:
                return point
        return None


def input_gradient(critic: Critic | CriticPass, x: Tensor) -> tuple[Tensor, Tensor]:
    """Return ``(D(x), grad_x sum D(x))`` with a graph, so penalties on the gradient train D.

    The input is detached (the penalty is a function of the critic only). From a
    :class:`CriticPass` holding ``x`` the critic is not run again."""
    if isinstance(critic, CriticPass):
        return critic.input_gradient(x)
    return _input_gradient_by_new_forward(critic, x)


def _input_gradient_by_new_forward(critic: Critic, x: Tensor) -> tuple[Tensor, Tensor]:
    x = x.detach().requires_grad_(True)
    out = critic(x)
    (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    return out, grad.flatten(1)
