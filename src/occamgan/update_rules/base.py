"""The UpdateRule interface: how the players move, given a Game and a batch source."""
from __future__ import annotations

from typing import Any, Callable

from torch import Tensor

from ..registry import Registry

NextBatch = Callable[[], Tensor]


class UpdateRule:
    """Consumes a Game and batches, updates the parameters, holds its optimiser state.

    ``step`` performs one *generator* step (with whatever critic steps precede it) and returns
    scalar statistics for the log (losses, learning rates, solver iterations, ...).
    """

    #: competitive rules on a zero-sum value need ``game.zero_sum`` (checked once, by the builder)
    requires_zero_sum: bool = False
    #: rules built on the critic's mixed derivatives need a critic
    requires_discriminator: bool = False
    #: rules that differentiate the losses twice (mixed Hessian-vector products) run float32 and
    #: eager under train.amp and train.compile (Game.differentiated_twice)
    second_order: bool = False

    def step(self, game: Any, next_batch: NextBatch) -> dict[str, float]:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, Any]) -> None:
        raise NotImplementedError


#: name -> factory(game, train section) -> UpdateRule; registered with the rule's parameter model
UPDATE_RULES: Registry[Callable[..., UpdateRule]] = Registry("update rule")
