"""CGD / ACGD / GACGD update rules: dense local-Nash checks, the bilinear game, real models."""
import io
import math

import pytest
import torch
from torch import nn

from occamgan.build import check_rule_fits
from occamgan.config import build_config, config_section
from occamgan.errors import ConfigError, TrainingError
from occamgan.game import Game
from occamgan.objectives.base import OBJECTIVES
from occamgan.regularizers import GradientNormRegularizer
from occamgan.update_rules.base import UPDATE_RULES
from occamgan.update_rules.mixed_hvp import flatten, unflatten

F64 = torch.float64


@pytest.fixture
def float64():
    """The game samples z in the default dtype: make it float64 for the dense comparisons."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(F64)
    yield
    torch.set_default_dtype(old)


def objective(name: str, **kw):
    # clip=1e9: WGAN loss with the clipping effectively off (the ICR paper's unregularised WGAN)
    return OBJECTIVES.create(name, **({"clip": 1e9} if name == "wgan" else {}), **kw)


def train_cfg(**kw):
    # constant lr: the closed-form steps below assume it (the schema default decays it)
    # the gacgd section holds every competitive rule's knobs (each rule reads its own)
    base = dict(update="gacgd", lr_g=0.3, lr_d=0.5, lr_decay="none", cg_tol=1e-30, cg_atol=0.0, cg_max_iter=500,
                gmres_restart=50)
    return config_section("train", **(base | kw))


def rule_config(update: str, objective: str):
    """A config naming a rule and an objective (what the builder checks them with)."""
    return build_config(overrides=[f"train.update={update}", f"objective.name={objective}"])


def small_game(obj_name: str, seed: int = 0, dtype=F64) -> Game:
    torch.manual_seed(seed)
    gen = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 2))
    crit = nn.Sequential(nn.Linear(2, 5), nn.Tanh(), nn.Linear(5, 1))
    return Game(gen, crit, objective(obj_name), latent_dim=2).to(dtype)


def fixed_batch(n: int = 12, seed: int = 1, dtype=F64) -> torch.Tensor:
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=dtype) + 1.0


# ------------------------------------------------------------------------ dense reference
def dense_losses(game: Game, real: torch.Tensor, z: torch.Tensor):
    """(L_D, L_G) as functions of the flat parameter vectors (x, y), for dense Hessians."""
    x, y = game.generator_parameters(), game.discriminator_parameters()
    names_g = [n for n, _ in game.generator.named_parameters()]
    names_d = [n for n, _ in game.discriminator.named_parameters()]

    def losses(theta_x, theta_y):
        fake = torch.func.functional_call(game.generator, dict(zip(names_g, unflatten(theta_x, x))), (z,))
        params_d = dict(zip(names_d, unflatten(theta_y, y)))
        d_real = torch.func.functional_call(game.discriminator, params_d, (real,)).reshape(-1)
        d_fake = torch.func.functional_call(game.discriminator, params_d, (fake,)).reshape(-1)
        obj = game.objective
        return obj.discriminator_loss(d_real, d_fake), obj.generator_loss(d_real.detach(), d_fake)

    return losses, flatten(x), flatten(y)


def derivatives(fn, theta_x, theta_y):
    """Gradient blocks and the mixed blocks (d2/dx dy as an x-by-y matrix, and its y-by-x partner)."""
    g = torch.autograd.functional.jacobian(fn, (theta_x, theta_y))
    h = torch.autograd.functional.hessian(fn, (theta_x, theta_y))
    return g[0], g[1], h[0][1], h[1][0]


def rms_step_sizes(grad, lr, beta, eps):
    """ACGD step sizes after one step from zero statistics (t = 1)."""
    v = (1 - beta) * grad**2
    return lr * math.sqrt(1 - beta) / (v.sqrt() + eps)


def dense_zero_sum_step(game, real, z, cfg, adaptive):
    """Methods.md section 7 with V = -L_D (G minimises, D maximises), diagonal E:
    dx = -(I + Ex Dxy Ey Dyx)^-1 Ex (gx + Dxy Ey gy),  dy = (I + Ey Dyx Ex Dxy)^-1 Ey (gy - Dyx Ex gx)."""
    losses, tx, ty = dense_losses(game, real, z)
    gx, gy, dxy, dyx = derivatives(lambda a, b: -losses(a, b)[0], tx, ty)
    if adaptive:
        ex = rms_step_sizes(gx, cfg.lr_g, cfg.acgd_beta, cfg.acgd_eps)
        ey = rms_step_sizes(gy, cfg.lr_d, cfg.acgd_beta, cfg.acgd_eps)
    else:
        ex, ey = torch.full_like(gx, cfg.lr_g), torch.full_like(gy, cfg.lr_d)
    ex_m, ey_m = torch.diag(ex), torch.diag(ey)
    ix, iy = torch.eye(len(gx), dtype=F64), torch.eye(len(gy), dtype=F64)
    dx = -torch.linalg.solve(ix + ex_m @ dxy @ ey_m @ dyx, ex * (gx + dxy @ (ey * gy)))
    dy = torch.linalg.solve(iy + ey_m @ dyx @ ex_m @ dxy, ey * (gy - dyx @ (ex * gx)))
    # the local Nash conditions: each move is the best response to the other's (the CGD local game)
    assert torch.allclose(dx, -ex * (gx + dxy @ dy), atol=1e-12)
    assert torch.allclose(dy, ey * (gy + dyx @ dx), atol=1e-12)
    return dx, dy, ex * gx, ey * gy


def dense_general_sum_step(game, real, z, cfg):
    """Both minimise: G its L_G (f), D its L_D (h); solve the block system of the local game
    [I, Ex Dxy f; Ey Dyx h, I] [dx; dy] = -[Ex grad_x f; Ey grad_y h] densely."""
    losses, tx, ty = dense_losses(game, real, z)
    fx, _, fxy, _ = derivatives(lambda a, b: losses(a, b)[1], tx, ty)
    _, hy, _, hyx = derivatives(lambda a, b: losses(a, b)[0], tx, ty)
    ex = rms_step_sizes(fx, cfg.lr_g, cfg.acgd_beta, cfg.acgd_eps)
    ey = rms_step_sizes(hy, cfg.lr_d, cfg.acgd_beta, cfg.acgd_eps)
    nx, ny = len(fx), len(hy)
    block = torch.eye(nx + ny, dtype=F64)
    block[:nx, nx:] = ex[:, None] * fxy
    block[nx:, :nx] = ey[:, None] * hyx
    sol = torch.linalg.solve(block, -torch.cat([ex * fx, ey * hy]))
    return sol[:nx], sol[nx:], -ex * fx, -ey * hy


def run_step(rule_name, game, real, cfg, seed=5):
    rule = UPDATE_RULES.get(rule_name)(game, cfg)
    before_x, before_y = flatten(game.generator_parameters()), flatten(game.discriminator_parameters())
    torch.manual_seed(seed)
    stats = rule.step(game, lambda: real)
    dx = flatten(game.generator_parameters()) - before_x
    dy = flatten(game.discriminator_parameters()) - before_y
    return dx, dy, stats


def latent(n, latent_dim, seed=5):
    torch.manual_seed(seed)
    return torch.randn(n, latent_dim)  # what game.sample_latent draws after the same seed


@pytest.mark.parametrize("rule_name", ["cgd", "acgd"])
@pytest.mark.parametrize("solve", ["g", "d"])
@pytest.mark.parametrize("obj_name", ["wgan", "minimax"])
@pytest.mark.usefixtures("float64")
def test_zero_sum_step_equals_dense_local_nash(rule_name, solve, obj_name):
    game, real = small_game(obj_name), fixed_batch()
    cfg = train_cfg(cgd_solve=solve)
    z = latent(len(real), game.latent_dim)
    dx_ref, dy_ref, gda_x, gda_y = dense_zero_sum_step(game, real, z, cfg, adaptive=rule_name == "acgd")
    dx, dy, stats = run_step(rule_name, game, real, cfg)
    assert torch.allclose(dx, dx_ref, rtol=0, atol=1e-10)
    assert torch.allclose(dy, dy_ref, rtol=0, atol=1e-10)
    # the competitive term matters here: the step is far from simultaneous gradient descent-ascent
    assert torch.linalg.vector_norm(dx - (-gda_x)) > 1e-3
    assert torch.linalg.vector_norm(dy - gda_y) > 1e-3
    assert stats["solver_converged"] == 1.0 and stats["solved_player"] == (0.0 if solve == "g" else 1.0)
    assert stats["grad_evals"] == 1 + 2 * stats["solver_iters"] + 2  # cold start: no residual product


@pytest.mark.parametrize("solve", ["g", "d"])
@pytest.mark.parametrize("obj_name", ["ns", "lsgan", "rgan"])
@pytest.mark.usefixtures("float64")
def test_general_sum_step_equals_dense_local_nash(solve, obj_name):
    game, real = small_game(obj_name, seed=2), fixed_batch(seed=3)
    cfg = train_cfg(cgd_solve=solve, gmres_restart=4, cg_tol=1e-26)  # several GMRES restarts
    z = latent(len(real), game.latent_dim)
    dx_ref, dy_ref, gd_x, gd_y = dense_general_sum_step(game, real, z, cfg)
    dx, dy, stats = run_step("gacgd", game, real, cfg)
    assert torch.allclose(dx, dx_ref, rtol=0, atol=1e-10)
    assert torch.allclose(dy, dy_ref, rtol=0, atol=1e-10)
    assert torch.linalg.vector_norm(dx - gd_x) + torch.linalg.vector_norm(dy - gd_y) > 1e-3
    assert stats["solver_converged"] == 1.0 and stats["solver_iters"] > 4, stats


@pytest.mark.parametrize("obj_name", ["minimax", "wgan_gp", "wgan_div"])
@pytest.mark.usefixtures("float64")
def test_general_sum_rule_on_zero_sum_game_equals_acgd(obj_name):
    """WGAN-GP and WGAN-div count as zero-sum: their penalties see detached samples, so they add
    nothing to grad_G L_D or to the mixed blocks, and ACGD on V = -L_D equals GACGD on (L_G, L_D)."""
    real, cfg = fixed_batch(), train_cfg()
    assert small_game(obj_name).zero_sum
    dx_a, dy_a, _ = run_step("acgd", small_game(obj_name), real, cfg)
    dx_g, dy_g, _ = run_step("gacgd", small_game(obj_name), real, cfg)
    assert torch.allclose(dx_a, dx_g, rtol=0, atol=1e-10)
    assert torch.allclose(dy_a, dy_g, rtol=0, atol=1e-10)
    if obj_name != "minimax":  # the penalty is in the step: without it the critic moves otherwise
        bare = small_game(obj_name)
        bare.objective.penalty = lambda critic, real, fake: None
        dx_b, dy_b, _ = run_step("acgd", bare, real, cfg)
        assert torch.linalg.vector_norm(dy_b - dy_a) > 1e-6 * torch.linalg.vector_norm(dy_a)


# ------------------------------------------------------------------------ the bilinear game
class Point(nn.Module):
    """A one-parameter player: the generator outputs x for every z."""

    def __init__(self, value: float):
        super().__init__()
        self.x = nn.Parameter(torch.tensor([value], dtype=F64))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.x.expand(len(z), 1)


class Scale(nn.Module):
    """A one-parameter critic D(u) = -a y u: with real = 0, WGAN's V = -L_D = a x y."""

    def __init__(self, value: float, a: float):
        super().__init__()
        self.y, self.a = nn.Parameter(torch.tensor([value], dtype=F64)), a

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return -self.a * self.y * u


def bilinear_game(a: float) -> Game:
    return Game(Point(0.5), Scale(0.5, a), objective("wgan"), latent_dim=1)


@pytest.mark.parametrize("a", [1.0, 3.0])
def test_bilinear_gda_spirals_out_while_cgd_converges(a):
    eta, steps = 0.2, 60
    zeros = lambda: torch.zeros(4, 1, dtype=F64)  # noqa: E731
    # simultaneous gradient descent-ascent on the same game, through the Game's losses
    gda = bilinear_game(a)
    for _ in range(steps):
        loss_d, loss_g = gda.losses(zeros(), gda.sample_latent(4))
        gx = torch.autograd.grad(loss_g, gda.generator.x, retain_graph=True)[0]
        gy = torch.autograd.grad(loss_d, gda.discriminator.y)[0]
        with torch.no_grad():
            gda.generator.x -= eta * gx
            gda.discriminator.y -= eta * gy
    cgd = bilinear_game(a)
    rule = UPDATE_RULES.get("cgd")(cgd, train_cfg(lr_g=eta, lr_d=eta, cg_tol=1e-28))
    x, y = 0.5, 0.5
    for _ in range(steps):
        stats = rule.step(cgd, zeros)
        # closed form of the CGD step on a x y: a rotation shrunk by 1 / (1 + eta^2 a^2)
        x, y = (x - eta * a * y) / (1 + (eta * a) ** 2), (y + eta * a * x) / (1 + (eta * a) ** 2)
        assert cgd.generator.x.item() == pytest.approx(x, rel=1e-12, abs=1e-15)
        assert cgd.discriminator.y.item() == pytest.approx(y, rel=1e-12, abs=1e-15)
    r0 = math.hypot(0.5, 0.5)
    r_gda = math.hypot(gda.generator.x.item(), gda.discriminator.y.item())
    r_cgd = math.hypot(cgd.generator.x.item(), cgd.discriminator.y.item())
    growth = (1 + (eta * a) ** 2) ** (steps / 2)
    assert r_gda == pytest.approx(r0 * growth, rel=1e-10)  # spirals out
    assert r_cgd == pytest.approx(r0 / growth, rel=1e-10)  # converges to the equilibrium (0, 0)
    assert r_gda > 1.5 * r0 and r_cgd < r0 / 1.5
    assert stats["solver_iters"] <= 1  # a 1-d SPD system: one CG step (or none from a warm start)


# ------------------------------------------------------------------------ real models
def batchnorm_dropout_game(obj_name: str) -> Game:
    torch.manual_seed(0)
    gen = nn.Sequential(nn.Linear(3, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 2))
    crit = nn.Sequential(
        nn.Linear(2, 16), nn.BatchNorm1d(16), nn.LeakyReLU(0.2), nn.Dropout(0.2), nn.Linear(16, 1)
    )
    return Game(gen, crit, objective(obj_name), latent_dim=3)


@pytest.mark.parametrize("rule_name,obj_name", [("cgd", "wgan"), ("acgd", "wgan"), ("acgd", "minimax"), ("gacgd", "ns")])
def test_step_with_batchnorm_and_dropout(rule_name, obj_name):
    game = batchnorm_dropout_game(obj_name)
    game.train()
    real = torch.randn(32, 2)
    cfg = train_cfg(lr_g=1e-2, lr_d=1e-2, cg_tol=1e-10, cg_atol=1e-20, cg_max_iter=100, gmres_restart=10)
    rule = UPDATE_RULES.get(rule_name)(game, cfg)
    before = {n: p.detach().clone() for n, p in game.named_parameters()}
    bn_before = game.discriminator[1].running_mean.clone()
    for _ in range(2):  # both players' systems (alternating)
        stats = rule.step(game, lambda: real)
        assert stats["solver_converged"] == 1.0 and stats["solver_iters"] >= 1
    assert all(math.isfinite(v) for v in stats.values())
    change = {n: (p - before[n]).abs().max().item() for n, p in game.named_parameters()}
    exact_zero = {"discriminator.4.bias"} if obj_name == "wgan" else set()
    # the WGAN critic's last bias has the constant gradient 0 and no mixed terms: it stays exactly
    assert all(change[n] == 0.0 for n in exact_zero)
    # a bias right before a BatchNorm cancels in its output, and so does G's output bias (D's
    # BatchNorm sees the fake batch alone and removes a common shift): their gradients are ~0.
    flat = {"generator.0.bias", "discriminator.0.bias", "generator.4.bias"} | exact_zero
    still = {n for n in change if change[n] <= 1e-6}
    if rule_name == "cgd":
        assert still == flat, sorted(change.items())
    else:  # ACGD divides tiny non-zero gradients by their own RMS: those may move
        assert exact_zero <= still <= flat, sorted(change.items())
    assert not torch.equal(game.discriminator[1].running_mean, bn_before)


def test_float32_step_reports_solver_statistics():
    game = small_game("wgan", dtype=torch.float32)
    cfg = config_section("train", update="acgd", lr_g=1e-3, lr_d=1e-3)  # the defaults: tol 1e-10 on ||r||^2
    rule = UPDATE_RULES.get("acgd")(game, cfg)
    real = fixed_batch(dtype=torch.float32)
    for _ in range(3):
        stats = rule.step(game, lambda: real)
        assert stats["solver_converged"] == 1.0 and stats["solver_residual"] <= 1e-5
    assert {"loss_d", "loss_g", "solver_iters", "grad_evals", "lr_g", "lr_d"} <= set(stats)
    assert stats["grad_evals"] == 1 + 2 * stats["solver_iters"] + 2


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize("rule_name,obj_name", [("acgd", "minimax"), ("gacgd", "ns")])
def test_warm_start_changes_cost_not_result(rule_name, obj_name):
    real = [fixed_batch(seed=s) for s in range(3)]
    runs = {}
    for warm in (False, True):
        game = small_game(obj_name)
        rule = UPDATE_RULES.get(rule_name)(game, train_cfg(cg_tol=1e-26, cgd_warm_start=warm))
        evals = [rule.step(game, lambda: real[i])["grad_evals"] for i in range(3)]
        runs[warm] = (flatten(game.parameters()), evals)
    assert torch.allclose(runs[True][0], runs[False][0], rtol=0, atol=1e-10)
    assert runs[True][1][0] == runs[False][1][0]  # no previous step yet: the same cold solve


# ------------------------------------------------------------------------ checks and errors
@pytest.mark.usefixtures("float64")
def test_zero_sum_rules_refuse_general_sum_games():
    for name in ("cgd", "acgd"):
        assert UPDATE_RULES.get(name).requires_zero_sum
        with pytest.raises(ConfigError, match="zero-sum.*gacgd"):
            check_rule_fits(rule_config(name, "ns"), small_game("ns"))
    assert not UPDATE_RULES.get("gacgd").requires_zero_sum
    check_rule_fits(rule_config("gacgd", "ns"), small_game("ns"))  # accepted


@pytest.mark.usefixtures("float64")
def test_zero_sum_rules_refuse_generator_only_penalty():
    game = small_game("wgan")
    game.regularizers.append(GradientNormRegularizer(0.1))
    with pytest.raises(ConfigError, match="GradientNormRegularizer"):
        check_rule_fits(rule_config("cgd", "wgan"), game)


def test_competitive_rules_need_a_critic():
    gen = nn.Linear(2, 2)
    game = Game(gen, None, OBJECTIVES.create("mmd"), latent_dim=2)
    for name in ("cgd", "acgd", "gacgd"):
        with pytest.raises(ConfigError, match="needs a critic"):
            check_rule_fits(rule_config(name, "mmd"), game)


@pytest.mark.parametrize("rule_name", ["acgd", "gacgd"])
@pytest.mark.usefixtures("float64")
def test_non_finite_batch_stops_before_touching_parameters(rule_name):
    game = small_game("minimax")
    rule = UPDATE_RULES.get(rule_name)(game, train_cfg())
    rule.step(game, fixed_batch)
    params = flatten(game.parameters()).clone()
    state = {k: v.clone() if torch.is_tensor(v) else v for k, v in rule.state_dict().items()}
    bad = fixed_batch()
    bad[0, 0] = float("nan")
    with pytest.raises(TrainingError, match="non-finite"):
        rule.step(game, lambda: bad)
    assert torch.equal(flatten(game.parameters()), params)
    after = rule.state_dict()
    assert after["steps"] == state["steps"] == 1
    assert all(torch.equal(after[k], state[k]) for k in state if torch.is_tensor(state[k]))


@pytest.mark.parametrize("rule_name", ["cgd", "acgd", "gacgd"])
@pytest.mark.usefixtures("float64")
def test_state_round_trips_through_a_checkpoint(rule_name):
    obj = "ns" if rule_name == "gacgd" else "minimax"
    cfg = train_cfg(lr_g=0.05, lr_d=0.05, cg_tol=1e-20)
    batches = [fixed_batch(seed=s) for s in range(6)]

    def run(game, rule, idx):
        for i in idx:
            torch.manual_seed(100 + i)
            rule.step(game, lambda: batches[i])

    straight = small_game(obj)
    rule = UPDATE_RULES.get(rule_name)(straight, cfg)
    run(straight, rule, range(6))

    first = small_game(obj)
    rule = UPDATE_RULES.get(rule_name)(first, cfg)
    run(first, rule, range(3))
    buf = io.BytesIO()
    torch.save({"game": first.state_dict(), "rule": rule.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    resumed = small_game(obj, seed=99)  # different initial weights, overwritten by the checkpoint
    resumed.load_state_dict(saved["game"])
    rule = UPDATE_RULES.get(rule_name)(resumed, cfg)
    rule.load_state_dict(saved["rule"])
    assert rule.state_dict()["steps"] == 3
    run(resumed, rule, range(3, 6))
    assert torch.equal(flatten(resumed.parameters()), flatten(straight.parameters()))


@pytest.mark.parametrize("rule_name,obj_name", [("acgd", "wgan"), ("gacgd", "ns")])
def test_trainer_resume_equals_uninterrupted_run(tmp_path, rule_name, obj_name):
    from occamgan import api

    common = [
        f"train.update={rule_name}", f"objective.name={obj_name}", "train.lr_decay=none",
        *(["objective.clip=1e9"] if obj_name == "wgan" else []),
        "train.batch_size=32", "train.checkpoint_every=2", "model.width=16", "model.depth=1",
        "eval.n_samples=200", "eval.w2_samples=50",
    ]
    api.train(None, overrides=common + ["train.steps=4"], out=tmp_path / "straight", progress=False)
    api.train(None, overrides=common + ["train.steps=2"], out=tmp_path / "resumed", progress=False)
    api.train(None, overrides=["train.steps=4"], out=tmp_path / "resumed", resume=True, progress=False)
    load = lambda run: torch.load(tmp_path / run / "checkpoints" / "last.pt", weights_only=True)  # noqa: E731
    a, b = load("straight"), load("resumed")
    for part in ("generator", "discriminator"):
        assert all(torch.equal(a[part][k], b[part][k]) for k in a[part])
    assert a["rule"]["steps"] == b["rule"]["steps"] == 4
    assert torch.equal(a["rule"]["sq_avg_g"], b["rule"]["sq_avg_g"])
