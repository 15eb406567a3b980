"""The sharpness score of a trained generator: the top Hessian eigenvalues of L_G (and optionally
L_D) at the evaluated generator, averaged over seeded training batches
(:func:`occamgan.diagnostics.hessian.sharpness`; Filippone & Linhard 2025, Sec. "Flat minima")."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ..diagnostics.hessian import PLAYERS, sharpness
from ..errors import ConfigError
from ..params import Params
from .base import EvalContext, register_metric

#: seed offset of the batches and latents of the sharpness score
SHARPNESS_SEED_OFFSET = 3


class SharpnessParams(Params):
    #: how many top eigenvalues (Lanczos on Hessian-vector products)
    sharpness_k: int = Field(1, ge=1)
    #: training batches (of train.batch_size) to average over
    sharpness_batches: int = Field(4, ge=1)
    #: over batches: mean of per-batch top eigenvalues, or top eigenvalues of the mean Hessian
    #: (the paper's script for the Gaussian experiment)
    sharpness_reduce: Literal["eigenvalues", "hessian"] = "eigenvalues"
    #: whose loss: g (L_G w.r.t. the generator), d (L_D w.r.t. the critic) or both
    sharpness_players: Literal["g", "d", "both"] = "g"


def players_of(choice: str) -> tuple[str, ...]:
    return PLAYERS if choice == "both" else (choice,)


@register_metric("sharpness", params=SharpnessParams)
def sharpness_score(ctx: EvalContext) -> dict[str, Any]:
    """top_eigenvalue (of L_G; top_eigenvalue_d of L_D): the Hessian's largest eigenvalues at the
    evaluated generator, networks in eval mode, without the Occam terms."""
    p = ctx.params
    if ctx.game is None or ctx.data is None:
        raise ConfigError("sharpness needs the trained game and its training data (a run)")
    players = players_of(p.sharpness_players)
    for player in players:
        if player == "d" and not ctx.game.has_discriminator:
            raise ConfigError(f"sharpness of player d: objective {type(ctx.game.objective).__name__} has no discriminator")
        params = list(ctx.generator.parameters()) if player == "g" else ctx.game.discriminator_parameters()
        n_params = sum(q.numel() for q in params)
        if p.sharpness_k > n_params:
            raise ConfigError(f"sharpness_k = {p.sharpness_k} exceeds the {n_params} parameters of player {player}")
    seed = ctx.run_seed + SHARPNESS_SEED_OFFSET
    values: dict[str, Any] = sharpness(ctx.game, ctx.data.data, ctx.train_batch_size, n_batches=p.sharpness_batches,
                                       k=p.sharpness_k, seed=seed, players=players, generator=ctx.generator,
                                       reduce=p.sharpness_reduce)
    values["protocol_sharpness"] = {"generator": ctx.label, "batches": p.sharpness_batches,
                                    "batch_size": ctx.train_batch_size, "k": p.sharpness_k,
                                    "reduce": p.sharpness_reduce, "seed": seed, "eigenvalues": "largest algebraic",
                                    "loss": "objective's own, eval mode, no Occam terms"}
    return values
