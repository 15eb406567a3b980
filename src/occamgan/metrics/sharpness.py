"""The sharpness score of a trained generator: Hessian eigenvalues of L_G (and optionally L_D) at
the evaluated generator (:func:`occamgan.diagnostics.hessian.sharpness`; Filippone & Linhard 2025,
Sec. "Flat minima"; docs/methods.md sections 3-4).

``eval.sharpness_methods`` chooses what is measured, each under its own key:

- ``lanczos_top`` -> ``top_eigenvalue`` (occamgan's protocol): the largest algebraic eigenvalue
  by Lanczos, averaged over ``eval.sharpness_batches`` seeded training batches;
- ``power_abs`` -> ``top_abs_eigenvalue`` (the authors' protocol): the largest-magnitude eigenvalue
  by ``eval.sharpness_power_iters`` steps of power iteration (relative tolerance
  ``eval.sharpness_power_tol``) on one training batch with fresh latents. The authors use the
  run's last training batch, and so does occamgan wherever it can rebuild it
  (``EvalContext.last_training_batch``: from the batch sampler's state at the end of training,
  or the checkpoint's in ``occamgan sharpness RUN`` / ``eval RUN``; in-memory data). Elsewhere
  (evaluations during training, streamed image folders) the batch is the first of the seeded
  batches above: as random a set of distinct training points, but not the same points. The
  protocol record says which;
- ``smallest`` -> ``bottom_eigenvalue``: the smallest algebraic eigenvalue by Lanczos, averaged
  over the batches like the top one.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from ..diagnostics.hessian import PLAYERS, POWER_ITERS, POWER_TOL, sharpness
from ..errors import ConfigError
from ..params import Params
from .base import EvalContext, register_metric

#: seed offset of the batches and latents of the sharpness score
SHARPNESS_SEED_OFFSET = 3

Method = Literal["lanczos_top", "power_abs", "smallest"]


class SharpnessParams(Params):
    #: how many top (and bottom) eigenvalues (Lanczos on Hessian-vector products)
    sharpness_k: int = Field(1, ge=1)
    #: training batches (of train.batch_size) to average over
    sharpness_batches: int = Field(4, ge=1)
    #: over batches: mean of per-batch top eigenvalues, or top eigenvalues of the mean Hessian
    #: (the paper's script for the Gaussian experiment)
    sharpness_reduce: Literal["eigenvalues", "hessian"] = "eigenvalues"
    #: whose loss: g (L_G w.r.t. the generator), d (L_D w.r.t. the critic) or both
    sharpness_players: Literal["g", "d", "both"] = "g"
    #: what to measure: lanczos_top (top_eigenvalue, largest algebraic, mean over batches),
    #: power_abs (top_abs_eigenvalue, largest magnitude by power iteration on one batch: the
    #: authors' protocol), smallest (bottom_eigenvalue, smallest algebraic, mean over batches)
    sharpness_methods: list[Method] = Field(default_factory=lambda: ["lanczos_top"])
    #: power_abs: at most this many Hessian-vector products (hessian-eigenthings' default, the authors')
    sharpness_power_iters: int = Field(POWER_ITERS, ge=1)
    #: power_abs: stop when the estimate changes by at most this fraction of itself
    sharpness_power_tol: float = Field(POWER_TOL, ge=0)
    #: power_abs: "last", the run's last training batch (the authors'; where it cannot be rebuilt,
    #: the first seeded batch, as the record says), or "seeded", the first seeded batch (the one
    #: lanczos_top and smallest see first, so that all three measure one Hessian)
    sharpness_power_batch: Literal["last", "seeded"] = "last"

    @field_validator("sharpness_methods")
    @classmethod
    def _some_methods(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("name at least one of lanczos_top, power_abs, smallest")
        return list(dict.fromkeys(value))


def players_of(choice: str) -> tuple[str, ...]:
    return PLAYERS if choice == "both" else (choice,)


@register_metric("sharpness", params=SharpnessParams)
def sharpness_score(ctx: EvalContext) -> dict[str, Any]:
    """top_eigenvalue, top_abs_eigenvalue, bottom_eigenvalue (of L_G; a _d suffix for L_D), as
    chosen by eval.sharpness_methods: Hessian eigenvalues at the evaluated generator, networks in
    eval mode, without the Occam terms."""
    p = ctx.params
    if ctx.game is None or ctx.data is None:
        raise ConfigError("sharpness needs the trained game and its training data (a run)")
    players = players_of(p.sharpness_players)
    lanczos = [m for m in p.sharpness_methods if m != "power_abs"]
    for player in players:
        if player == "d" and not ctx.game.has_discriminator:
            raise ConfigError(f"sharpness of player d: objective {type(ctx.game.objective).__name__} has no discriminator")
        params = list(ctx.generator.parameters()) if player == "g" else ctx.game.discriminator_parameters()
        n_params = sum(q.numel() for q in params)
        if lanczos and p.sharpness_k > n_params:
            raise ConfigError(f"sharpness_k = {p.sharpness_k} exceeds the {n_params} parameters of player {player}")
    seed = ctx.run_seed + SHARPNESS_SEED_OFFSET
    last_batch = None
    if p.sharpness_power_batch == "last" and ctx.last_training_batch is not None:
        last_batch = ctx.last_training_batch()
    values: dict[str, Any] = sharpness(ctx.game, ctx.data.data, ctx.train_batch_size, n_batches=p.sharpness_batches,
                                       k=p.sharpness_k, seed=seed, players=players, generator=ctx.generator,
                                       reduce=p.sharpness_reduce, methods=p.sharpness_methods, last_batch=last_batch,
                                       power_iters=p.sharpness_power_iters, power_tol=p.sharpness_power_tol)
    protocol: dict[str, Any] = {"generator": ctx.label, "batch_size": ctx.train_batch_size, "seed": seed,
                                "methods": list(p.sharpness_methods),
                                "loss": "objective's own, eval mode, no Occam terms"}
    if lanczos:
        protocol.update(batches=p.sharpness_batches, k=p.sharpness_k, reduce=p.sharpness_reduce,
                        eigenvalues="largest algebraic (top_eigenvalue), smallest algebraic (bottom_eigenvalue)")
    if "power_abs" in p.sharpness_methods:
        protocol["power_abs"] = {
            "eigenvalue": "largest magnitude, sign kept (Rayleigh quotient of the last iterate)",
            "iters": p.sharpness_power_iters, "tol": p.sharpness_power_tol,
            "batch": "the run's last training batch" if last_batch is not None
            else "the first seeded batch (stands in for the run's last training batch)"}
    values["protocol_sharpness"] = protocol
    return values
