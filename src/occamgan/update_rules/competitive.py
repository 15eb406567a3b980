"""Competitive gradient descent: CGD, adaptive CGD (ACGD) and general-sum ACGD (GACGD).

Each player moves to the Nash equilibrium of a *local* game: its own linearised loss plus the
bilinear interaction with the other player's move, regularised by a quadratic in its own move
(Schäfer & Anandkumar 2019, "Competitive Gradient Descent", Sec. 2). Written in
"both minimise" form, with x = generator parameters minimising f = L_G, y = critic parameters
minimising h = L_D, gradients g_x = grad_x f, g_y = grad_y h, mixed blocks P = D_xy f, Q = D_yx h,
and diagonal step sizes E_x, E_y, the local equilibrium (dx, dy) solves

    dx = -E_x (g_x + P dy),        dy = -E_y (g_y + Q dx).                               (1)

Eliminating dy, with S_x = E_x^(1/2) and dx = S_x u (the symmetrised form of Schäfer, Zheng &
Anandkumar 2020, "Implicit competitive regularization in GANs", the ACGD algorithm),

    (I - S_x P E_y Q S_x) u = -S_x (g_x - P E_y g_y),                                    (2)

and symmetrically for y. The other player's step then follows from (1) with one more product.

- Zero-sum (``cgd``, ``acgd``): one value V = -L_D, which the generator minimises and the
  critic maximises (so f = V, h = -V and Q = -P^T); this requires ``game.zero_sum`` (then
  grad_G V = grad_G L_G). The matrix of (2) becomes I + S_x D_xy E_y D_yx S_x: symmetric
  positive definite, solved by conjugate gradients. With E = eta I this is docs/methods.md section 7:
  dx = -eta (I + eta^2 D_xy D_yx)^-1 (grad_x V + eta D_xy grad_y V).
- General sum (``gacgd``): each player its own loss; (2) is not symmetric: restarted GMRES.
- Step sizes: ``cgd`` uses E_x = lr_g, E_y = lr_d. ``acgd`` and ``gacgd`` use the RMSProp scaling
  of the ICR paper, per parameter: v = beta v + (1 - beta) g^2 of the player's own gradient,
  E = lr sqrt(1 - beta^t) / (sqrt(v) + eps). The lr schedule (``train.warmup_steps``, ``train.lr_decay``) scales lr.

Which player's system (2) is solved alternates between steps (``train.cgd_solve``). With
``train.cgd_warm_start`` the solver starts from the previous step of that player (in the
symmetrised variable, residual b - A x0); off by default, since on stochastic toy GANs it saved
no iterations and costs two products (BENCHMARKS.md). Cost per step: one (two for general sum)
gradient passes with graph, 2 products per solver iteration, one product each for the
right-hand side and the other player's step (+2 for a warm start): about 2k + 3 backward passes
for k iterations, vs 2 for an alternating Adam step.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Literal

import torch
from torch import Tensor, nn

from pydantic import Field

from .. import distributed
from ..errors import TrainingError
from ..params import Params as PluginParams
from ..game import Game
from .base import UPDATE_RULES, NextBatch, UpdateRule
from .krylov import SolveResult, conjugate_gradient, gmres
from .mixed_hvp import flatten, gradients_with_graph, mixed_product, unflatten
from .optimizers import lr_schedule

Product = Callable[[Tensor], Tensor]
Params = list[nn.Parameter]


class KrylovParams(PluginParams):
    """The linear solve of every competitive rule: it stops when
    ||r||^2 <= max(cg_tol ||b||^2, cg_atol) (squared, as in the reference ACGD code) or after
    cg_max_iter iterations; whose system is solved (the other's step costs one more product):
    alternate, g or d; and whether each solve starts from the player's previous step (off: on toy
    GANs it saved no iterations and cost two products per step; benchmarks/bench_competitive.py)."""

    cg_tol: float = Field(1e-10, gt=0)
    cg_atol: float = Field(1e-20, ge=0)
    cg_max_iter: int = Field(200, ge=1)
    cgd_solve: Literal["alternate", "g", "d"] = "alternate"
    cgd_warm_start: bool = False


class AdaptiveParams(KrylovParams):
    """ACGD's RMSProp step sizes: decay of the squared-gradient average and its epsilon."""

    acgd_beta: float = Field(0.99, gt=0, lt=1)
    acgd_eps: float = Field(1e-8, gt=0)


class GeneralSumParams(AdaptiveParams):
    """GACGD solves a non-symmetric system by GMRES, restarted every gmres_restart steps."""

    gmres_restart: int = Field(10, ge=1)


@dataclass
class LocalGame:
    """The local game at the current point in "both minimise" form (module docstring, (1))."""

    #: own gradients of the generator (x) and of the critic (y), flat and detached
    g_x: Tensor
    g_y: Tensor
    #: P v = D_xy f v (v in critic space -> generator space); Q u = D_yx h u (the reverse)
    p: Product
    q: Product
    #: backward passes spent on the gradients
    grad_evals: int


def zero_sum_local_game(loss_d: Tensor, x: Params, y: Params) -> LocalGame:
    """V = -L_D: the generator minimises V, the critic minimises h = -V (so Q = -D_yx V)."""
    grads = gradients_with_graph(-loss_d, [*x, *y])
    gv_x, gv_y = grads[: len(x)], grads[len(x):]
    return LocalGame(
        g_x=flatten(gv_x),
        g_y=-flatten(gv_y),
        p=lambda v: mixed_product(gv_y, x, v),
        q=lambda u: -mixed_product(gv_x, y, u),
        grad_evals=1,
    )


def general_sum_local_game(loss_d: Tensor, loss_g: Tensor, x: Params, y: Params) -> LocalGame:
    """f = L_G for the generator, h = L_D for the critic."""
    grads_f = gradients_with_graph(loss_g, [*x, *y])
    grads_h = gradients_with_graph(loss_d, [*x, *y])
    f_y, h_x = grads_f[len(x):], grads_h[: len(x)]
    return LocalGame(
        g_x=flatten(grads_f[: len(x)]),
        g_y=flatten(grads_h[len(x):]),
        p=lambda v: mixed_product(f_y, x, v),
        q=lambda u: mixed_product(h_x, y, u),
        grad_evals=2,
    )


def averaged_over_ranks(local: LocalGame) -> LocalGame:
    """Data-parallel: the local game of the global batch. Gradients and every mixed product are
    averaged over the ranks (one flat all-reduce each), so the Krylov solver sees the
    global-batch operator and every rank computes the same steps; unchanged in one process."""
    if not distributed.is_distributed():
        return local
    n_x = local.g_x.numel()
    grads = distributed.average_flat(torch.cat([local.g_x, local.g_y]))
    p, q = local.p, local.q
    return LocalGame(
        g_x=grads[:n_x],
        g_y=grads[n_x:],
        p=lambda v: distributed.average_flat(p(v)),
        q=lambda u: distributed.average_flat(q(u)),
        grad_evals=local.grad_evals,
    )


def _require_finite(tensor: Tensor, what: str) -> None:
    if not bool(torch.isfinite(tensor).all()):
        raise TrainingError(f"competitive step: non-finite {what}; parameters left unchanged")


class CompetitiveRule(UpdateRule):
    """One joint competitive step per call; subclasses fix the game type and the step sizes."""

    name = "competitive"
    requires_discriminator = True
    adaptive = False
    general_sum = False
    second_order = True

    def __init__(self, game: Game, cfg: Any):
        self.lr_g, self.lr_d = cfg.lr_g, cfg.lr_d
        self.lr_factor = lr_schedule(cfg)
        # the config holds squared tolerances (reference convention); the solvers take norms
        self.rtol, self.atol = math.sqrt(cfg.cg_tol), math.sqrt(cfg.cg_atol)
        self.max_iter = cfg.cg_max_iter
        self.restart = cfg.gmres_restart if self.general_sum else None
        self.solve, self.warm_start = cfg.cgd_solve, cfg.cgd_warm_start
        self.beta, self.eps = (cfg.acgd_beta, cfg.acgd_eps) if self.adaptive else (None, None)
        self.steps = 0
        self.sq_avg: dict[str, Tensor | None] = {"g": None, "d": None}
        self.prev_step: dict[str, Tensor | None] = {"g": None, "d": None}

    # ------------------------------------------------------------------ the step
    def step(self, game: Game, next_batch: NextBatch) -> dict[str, float]:
        with game.differentiated_twice():  # mixed Hessian-vector products: float32, eager
            return self._step(game, next_batch)

    def _step(self, game: Game, next_batch: NextBatch) -> dict[str, float]:
        real = next_batch()
        z = distributed.sample_latent(game, real.shape[0])
        loss_d, loss_g = game.losses(real, z)
        # data-parallel: the global-batch losses, so every rank takes the same decisions
        losses = distributed.average_flat(torch.stack([loss_d.detach(), loss_g.detach()]))
        _require_finite(losses, "loss")
        x, y = game.generator_parameters(), game.discriminator_parameters()
        if self.general_sum:
            local = general_sum_local_game(loss_d, loss_g, x, y)
        else:
            local = zero_sum_local_game(loss_d, x, y)
        local = averaged_over_ranks(local)
        _require_finite(local.g_x, "generator gradient")
        _require_finite(local.g_y, "critic gradient")
        t = self.steps + 1  # this step's number, committed with the state once it succeeded
        lr_scale = self.lr_factor(t - 1)
        e_x, v_x = self._step_sizes("g", local.g_x, self.lr_g * lr_scale, t)
        e_y, v_y = self._step_sizes("d", local.g_y, self.lr_d * lr_scale, t)
        solve_g = self.solve == "g" or (self.solve == "alternate" and t % 2 == 1)
        dx, dy, result = self._moves(local, e_x, e_y, solve_g)
        self._apply(x, dx)
        self._apply(y, dy)
        game.after_discriminator_step()
        self.steps, self.sq_avg = t, {"g": v_x, "d": v_y}
        self.prev_step = {"g": dx, "d": dy} if self.warm_start else {"g": None, "d": None}
        loss_d_value, loss_g_value = losses.tolist()
        return {
            "loss_d": loss_d_value,
            "loss_g": loss_g_value,
            "solver_iters": result.iterations,
            "solver_residual": result.relative_residual,
            "solver_converged": float(result.converged),
            "solved_player": 0.0 if solve_g else 1.0,
            "grad_evals": local.grad_evals + 2 * result.matvecs + 2,
            "step_norm_g": torch.linalg.vector_norm(dx).item(),
            "step_norm_d": torch.linalg.vector_norm(dy).item(),
            "lr_g": self.lr_g * lr_scale,
            "lr_d": self.lr_d * lr_scale,
        }

    def _moves(self, local: LocalGame, e_x: Tensor, e_y: Tensor, solve_g: bool) -> tuple[Tensor, Tensor, SolveResult]:
        """Both players' steps: one solve of (2), the other step from (1); checked before use."""
        if solve_g:
            dx, result = self._solve_player(local.g_x, local.g_y, local.p, local.q, e_x, e_y, "g")
            dy = -e_y * (local.g_y + local.q(dx))
        else:
            dy, result = self._solve_player(local.g_y, local.g_x, local.q, local.p, e_y, e_x, "d")
            dx = -e_x * (local.g_x + local.p(dy))
        _require_finite(dx, "generator step")
        _require_finite(dy, "critic step")
        return dx, dy, result

    def _step_sizes(self, player: str, grad: Tensor, lr: float, t: int) -> tuple[Tensor, Tensor | None]:
        """E = lr (CGD), or lr sqrt(1 - beta^t) / (sqrt(v) + eps) with the updated RMS statistic
        v = beta v + (1 - beta) g^2 (ACGD); returns E and the new v (None for CGD)."""
        if not self.adaptive:
            return torch.full_like(grad, lr), None
        v = self.sq_avg[player]
        v = torch.zeros_like(grad) if v is None else v.to(grad)
        v = v.mul(self.beta).addcmul_(grad, grad, value=1 - self.beta)
        return lr * math.sqrt(1 - self.beta**t) / (v.sqrt() + self.eps), v

    def _solve_player(
        self, g_a: Tensor, g_b: Tensor, p_ab: Product, q_ba: Product, e_a: Tensor, e_b: Tensor, player: str
    ) -> tuple[Tensor, SolveResult]:
        """Solve (2) for player a against b: (I - S_a P E_b Q S_a) u = -S_a (g_a - P E_b g_b),
        and return its step d_a = S_a u."""
        s_a = e_a.sqrt()
        rhs = -s_a * (g_a - p_ab(e_b * g_b))
        matvec = lambda u: u - s_a * p_ab(e_b * q_ba(s_a * u))  # noqa: E731
        prev = self.prev_step[player]
        start = None if prev is None or not self.warm_start else prev.to(g_a) / s_a
        solver = gmres if self.general_sum else conjugate_gradient
        kwargs = {"restart": self.restart} if self.general_sum else {}
        result = solver(matvec, rhs, start, rtol=self.rtol, atol=self.atol, max_iter=self.max_iter, **kwargs)
        return s_a * result.solution, result

    @staticmethod
    @torch.no_grad()
    def _apply(params: list, step: Tensor) -> None:
        for p, d in zip(params, unflatten(step, params)):
            p.add_(d)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "sq_avg_g": self.sq_avg["g"],
            "sq_avg_d": self.sq_avg["d"],
            "prev_step_g": self.prev_step["g"],
            "prev_step_d": self.prev_step["d"],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = int(state["steps"])
        self.sq_avg = {"g": state["sq_avg_g"], "d": state["sq_avg_d"]}
        self.prev_step = {"g": state["prev_step_g"], "d": state["prev_step_d"]}


class CGD(CompetitiveRule):
    """Competitive gradient descent with fixed step sizes lr_g, lr_d (Schäfer & Anandkumar 2019)."""

    name = "cgd"
    requires_zero_sum = True


class ACGD(CompetitiveRule):
    """Adaptive CGD: RMSProp step sizes (Schäfer, Zheng & Anandkumar 2020, ACGD)."""

    name = "acgd"
    requires_zero_sum = True
    adaptive = True


class GACGD(CompetitiveRule):
    """General-sum adaptive CGD: each player its own loss, solved by restarted GMRES."""

    name = "gacgd"
    adaptive = True
    general_sum = True


UPDATE_RULES.add("cgd", CGD, params=KrylovParams)
UPDATE_RULES.add("acgd", ACGD, params=AdaptiveParams)
UPDATE_RULES.add("gacgd", GACGD, params=GeneralSumParams)
