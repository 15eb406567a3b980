"""The objective interface: a discriminator loss and a generator loss on critic logits.

An objective maps critic outputs ``d_real = D(x)`` and ``d_fake = D(G(z))`` (shape ``(batch,)``) to
scalar losses that each player *minimises*. Gradient penalties, which need the critic itself and
the samples, are a separate hook; so is anything done to the critic after its optimiser step
(weight clipping). Objectives without a critic (MMD) set ``has_discriminator = False`` and
implement :meth:`Objective.sample_loss` instead.

Generator losses can be chosen independently of the discriminator loss (Jolicoeur-Martineau 2018,
"GANs beyond divergence minimization"): see :mod:`occamgan.objectives.generator_losses`.
"""
from __future__ import annotations

from typing import Callable

from torch import Tensor, nn

from ..registry import Registry
from .critic_pass import Critic, CriticPass, input_gradient  # noqa: F401  (penalties import them from here)

#: name -> factory(ObjectiveConfig) -> Objective
OBJECTIVES: Registry[Callable[..., "Objective"]] = Registry("objective")


class Objective:
    """Base class: subclasses override the losses and, where they apply, the hooks."""

    #: whether the game has a critic D (False for MMD on raw samples)
    has_discriminator: bool = True
    #: True when grad_G L_G = -grad_G L_D, i.e. the game is zero-sum in the generator's moves, so
    #: competitive rules (CGD, ACGD) can use f = -L_D as the game value.
    zero_sum: bool = False
    #: whether :meth:`generator_loss` reads ``d_real`` (else callers may pass ``None`` and skip D(x))
    generator_needs_real: bool = False
    #: points ("real", "fake") where :meth:`penalty` takes grad_x D through :func:`input_gradient`;
    #: the Game then evaluates the critic there on inputs that require grad and lets the penalty
    #: read the gradient from the loss's own forward (see :mod:`.critic_pass`)
    input_gradient_points: tuple[str, ...] = ()

    def discriminator_loss(self, d_real: Tensor, d_fake: Tensor) -> Tensor:
        raise NotImplementedError

    def generator_loss(self, d_real: Tensor | None, d_fake: Tensor) -> Tensor:
        raise NotImplementedError

    def penalty(self, critic: Critic, real: Tensor, fake: Tensor) -> Tensor | None:
        """Extra term of L_D that needs the critic itself (gradient penalties); None if none.

        Within a Game, ``critic`` is the :class:`CriticPass` of the loss (callable like the
        critic), so ``input_gradient(critic, real)`` reuses the loss's forward at those points."""
        return None

    @property
    def has_penalty(self) -> bool:
        """Whether this objective adds a critic penalty (WGAN-GP, WGAN-div)."""
        return type(self).penalty is not Objective.penalty

    def after_discriminator_step(self, discriminator: nn.Module) -> None:
        """Hook run after every critic optimiser step (WGAN weight clipping)."""

    def sample_loss(self, real: Tensor, fake: Tensor) -> Tensor:
        """Loss on raw samples for objectives without a critic (``has_discriminator = False``)."""
        raise NotImplementedError(f"{type(self).__name__} needs a discriminator")


class GeneratorLoss:
    """A generator loss chosen independently of the discriminator loss (``objective.generator_loss``).

    Called as ``loss(d_real, d_fake)`` on critic logits; ``d_real`` is None unless
    :attr:`needs_real` is set.
    """

    needs_real: bool = False

    def __call__(self, d_real: Tensor | None, d_fake: Tensor) -> Tensor:
        raise NotImplementedError


#: name -> factory(ObjectiveConfig) -> GeneratorLoss
GENERATOR_LOSSES: Registry[Callable[..., GeneratorLoss]] = Registry("generator loss")
