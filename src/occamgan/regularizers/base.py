"""The regulariser interface and registry (Filippone & Linhard 2025, Sec. "Regularization";
docs/methods.md section 3).

A regulariser plugs into the Game through up to three hooks:

- ``transform_fake``: change the fake samples seen by *both* losses (likelihood relaxation);
- ``discriminator_penalty``: a term added to L_D (R1, R2); within a Game its ``critic`` is the
  loss's :class:`~occamgan.objectives.critic_pass.CriticPass`, so input gradients at the real or
  fake batch reuse the loss's forward (declare those points in ``input_gradient_points``);
- ``generator_penalty``: a term added to L_G (gradient regularisation).

Each regulariser lives in its own file and registers a factory with the parameter model of its
knob(s); the ``regularizers`` config section is the union of those models. The factory takes the
section and returns a regulariser, or None when its knob is 0 (off).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

from torch import Tensor, nn

from ..objectives.base import Critic
from ..registry import Registry


class Regularizer:
    #: points ("real", "fake") where :meth:`discriminator_penalty` takes grad_x D through
    #: ``input_gradient``; the Game shares the loss's critic pass there (objectives/critic_pass.py)
    input_gradient_points: tuple[str, ...] = ()
    #: whether :meth:`generator_penalty` adds a term to L_G (which makes a zero-sum game general-sum)
    penalises_generator: bool = False
    #: whether that generator penalty is a function of a gradient of L_G, so that training
    #: differentiates L_G twice (the Game runs the generator step float32 and eager under
    #: train.amp and train.compile)
    second_order_generator: bool = False
    #: whether :meth:`discriminator_penalty` needs a critic (R1, R2)
    needs_discriminator: bool = False

    def transform_fake(self, fake: Tensor) -> Tensor:
        return fake

    def discriminator_penalty(self, critic: Critic, real: Tensor, fake: Tensor) -> Tensor | None:
        return None

    def generator_penalty(self, loss_g: Tensor, generator: nn.Module) -> Tensor | None:
        return None


#: name -> factory(regularizers section) -> Regularizer | None, with the regulariser's parameters
REGULARIZERS: Registry[Callable[[Any], Regularizer | None]] = Registry("regularizer")


def build_regularizers(section: Any) -> list[Regularizer]:
    """Instantiate every regulariser whose knob in the ``regularizers`` section is on."""
    built = (REGULARIZERS.get(name)(section) for name in REGULARIZERS.names())
    return [r for r in built if r is not None]


def sum_terms(terms: Sequence[Tensor | None]) -> Tensor | None:
    present = [t for t in terms if t is not None]
    return sum(present[1:], present[0]) if present else None
