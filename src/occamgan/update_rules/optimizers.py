"""Per-player torch optimisers and the LR schedule (warm-up, optional decay), shared by the first-order update rules."""
from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Literal

import torch
from torch import Tensor
from torch.optim import Adam, Optimizer
from torch.optim.lr_scheduler import LambdaLR
from pydantic import Field, field_validator

from .. import distributed
from ..params import Params

class AdamParams(Params):
    """Adam's knobs, shared by the first-order rules (both players use the same betas and eps)."""

    betas: tuple[float, float] = (0.5, 0.999)
    adam_eps: float = Field(1e-8, gt=0)

    @field_validator("betas")
    @classmethod
    def _betas_in_range(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not all(0 <= b < 1 for b in v):
            raise ValueError("betas must lie in [0, 1)")
        return v


class SAMParams(Params):
    """(A)SAM around each player's Adam (update_rules/sam.py): radius (0 = off), adaptive flag,
    ASAM's eta (Kwon et al. 2021: T = |psi| + eta) and which players use it."""

    sam_rho: float = Field(0.0, ge=0)
    sam_adaptive: bool = True
    #: ASAM's T = |psi| + eta (Kwon et al. 2021 use 0.01); 0 is T = |psi|, as in the paper's code
    sam_eta: float = Field(0.0, ge=0)
    sam_players: Literal["both", "g", "d"] = "both"


#: devices with a fused Adam kernel in torch >= 2.4
FUSED_ADAM_DEVICES = ("cpu", "cuda")


def build_adam(params: Iterable[torch.nn.Parameter], lr: float, cfg: Any, sam: bool) -> Optimizer:
    """Adam with the player's lr and the shared betas/eps, wrapped in (A)SAM when asked.

    torch's fused Adam kernel is used where it exists (CPU, CUDA): the same update in one call
    instead of ~10 tensor operations per parameter, which was a tenth of the training step of
    the paper's toy models (benchmarks/bench_gaussian_sweep.py)."""
    params = list(params)
    fused = bool(params) and all(p.is_floating_point() and p.device.type in FUSED_ADAM_DEVICES for p in params)
    opt: Optimizer = Adam(params, lr=lr, betas=tuple(cfg.betas), eps=cfg.adam_eps, fused=fused or None)
    if sam and cfg.sam_rho > 0:
        from .sam import wrap_sam

        opt = wrap_sam(opt, rho=cfg.sam_rho, adaptive=cfg.sam_adaptive, eta=cfg.sam_eta)
    return opt


class LRSchedule:
    """The lr factor per generator step: a linear warm-up from ``start`` to 1 over ``steps`` steps
    (the paper's code warms up from 0.01x over its first epochs; docs/methods.md section 2), then an
    optional decay from 1 to ``end`` at ``total`` steps:

        linear:  f(t) = 1 - (1 - end) u,                 u = (t - steps) / (total - steps)
        cosine:  f(t) = end + (1 - end) (1 + cos(pi u)) / 2   (Loshchilov & Hutter 2017, eq. 5)

    Decay lowers the stochastic-gradient noise of the last iterates, which sets how sharply the
    generator's samples concentrate (e.g. the high-quality fraction on ring8)."""

    def __init__(self, steps: int, start: float, decay: str = "none", total: int = 0, end: float = 0.0):
        self.steps, self.start = steps, start
        self.decay, self.total, self.end = decay, total, end

    def __call__(self, step: int) -> float:
        if step < self.steps:
            return self.start + (1.0 - self.start) * step / self.steps
        if self.decay == "none" or self.total <= self.steps:
            return 1.0
        u = min(1.0, (step - self.steps) / (self.total - self.steps))
        if self.decay == "linear":
            return 1.0 - (1.0 - self.end) * u
        return self.end + (1.0 - self.end) * 0.5 * (1.0 + math.cos(math.pi * u))


def lr_schedule(cfg: Any) -> Callable[[int], float]:
    """The lr factor per generator step from the ``train`` section.

    A plain function, not the LRSchedule object: LambdaLR checkpoints the ``__dict__`` of callable
    objects and restores it on load, which would pin the decay to the train.steps of the run that
    wrote the checkpoint; a resume that extends train.steps must follow the new schedule."""
    schedule = LRSchedule(cfg.warmup_steps, cfg.warmup_start, cfg.lr_decay, cfg.steps, cfg.lr_decay_end)

    def factor(step: int) -> float:
        return schedule(step)

    return factor


def build_lr_scheduler(opt: Optimizer, cfg: Any) -> LambdaLR:
    return LambdaLR(opt, lr_schedule(cfg))


def descend(opt: Optimizer, loss_fn: Callable[[], Tensor]) -> Tensor:
    """One optimiser step on ``loss_fn`` through a closure (SAM re-evaluates it); returns the
    loss at the current point, detached. Data-parallel: each evaluation's gradients are averaged
    over the ranks (both SAM passes too), so every rank steps with the global-batch gradient."""

    def closure() -> Tensor:
        opt.zero_grad(set_to_none=True)
        loss = loss_fn()
        loss.backward()
        distributed.average_optimizer_gradients(opt)
        return loss

    return opt.step(closure).detach()


def restore_player(opt: Optimizer, sched: LambdaLR, state: dict[str, Any], lr: float, cfg: Any) -> None:
    """Load a player's optimiser and schedule state, then apply the *current* config's settings:
    a resume that changes train.lr_g/lr_d, betas, adam_eps, the warm-up, the decay or the SAM
    knobs runs with the new values (Adam's moment estimates and the step count carry over), so
    the config.yaml of the run says what actually runs."""
    opt.load_state_dict(state["opt"])
    sched.load_state_dict(state["sched"])
    factor = lr_schedule(cfg)(sched.last_epoch)  # LambdaLR keeps today's function, not the saved one
    sched.base_lrs = [lr for _ in opt.param_groups]
    for group in opt.param_groups:
        group.update(initial_lr=lr, lr=lr * factor, betas=tuple(cfg.betas), eps=cfg.adam_eps)
        if "rho" in group:  # (A)SAM's knobs live in the shared groups
            group.update(rho=cfg.sam_rho, adaptive=cfg.sam_adaptive, eta=getattr(cfg, "sam_eta", 0.0))
