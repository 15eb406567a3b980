"""SAM / ASAM (update_rules/sam.py): one step against a hand computation, torch.optim conventions
(shared param groups, schedulers, state_dict round trip) and BatchNorm statistics."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from occamgan.update_rules.sam import SAM, running_stats_frozen, wrap_sam



@pytest.fixture(autouse=True)
def float64():
    """Hand computations to 1e-12 need double precision; restored after each test."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def regression_problem(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(16, 3, generator=gen)
    y = torch.randn(16, 1, generator=gen)
    model = nn.Linear(3, 1)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[0.5, -1.0, 2.0]]))
        model.bias.copy_(torch.tensor([0.3]))
    return model, x, y


def flat_gradient(w: torch.Tensor, b: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient of mean((x w^T + b - y)^2) by hand: 2/N X^T r, 2/N sum r."""
    r = x @ w.T + b - y
    return 2 * r.T @ x / len(x), 2 * r.sum(0) / len(x)


def make_closure(model, x, y, calls):
    def closure():
        calls.append(1)
        loss = (model(x) - y).pow(2).mean()
        loss.backward()
        return loss

    return closure


def test_sam_sgd_step_equals_hand_computation():
    model, x, y = regression_problem()
    w0, b0 = model.weight.detach().clone(), model.bias.detach().clone()
    rho, lr = 0.1, 0.05
    opt = SAM(torch.optim.SGD(model.parameters(), lr=lr), rho=rho, adaptive=False)
    calls: list[int] = []
    loss = opt.step(make_closure(model, x, y, calls))

    gw, gb = flat_gradient(w0, b0, x, y)
    norm = torch.sqrt(gw.pow(2).sum() + gb.pow(2).sum())
    ew, eb = rho * gw / norm, rho * gb / norm
    gw2, gb2 = flat_gradient(w0 + ew, b0 + eb, x, y)
    assert len(calls) == 2  # two gradient evaluations, no more
    assert loss.item() == pytest.approx((x @ w0.T + b0 - y).pow(2).mean().item(), rel=1e-12)
    torch.testing.assert_close(model.weight.detach(), w0 - lr * gw2, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(model.bias.detach(), b0 - lr * gb2, rtol=1e-12, atol=1e-12)
    # and it is not plain SGD
    assert not torch.allclose(model.weight.detach(), w0 - lr * gw, atol=1e-6)


def test_asam_adam_step_equals_hand_computation():
    model, x, y = regression_problem(1)
    w0, b0 = model.weight.detach().clone(), model.bias.detach().clone()
    rho, lr, eps = 0.5, 0.01, 1e-8
    opt = SAM(torch.optim.Adam(model.parameters(), lr=lr, betas=(0.5, 0.999), eps=eps), rho=rho, adaptive=True)
    opt.step(make_closure(model, x, y, []))

    gw, gb = flat_gradient(w0, b0, x, y)
    norm = torch.sqrt((w0.abs() * gw).pow(2).sum() + (b0.abs() * gb).pow(2).sum())
    ew, eb = rho * w0.pow(2) * gw / norm, rho * b0.pow(2) * gb / norm
    gw2, gb2 = flat_gradient(w0 + ew, b0 + eb, x, y)
    # first Adam step with bias correction: m_hat = g, v_hat = g^2
    adam = lambda p, g: p - lr * g / (g.abs() + eps)  # noqa: E731
    torch.testing.assert_close(model.weight.detach(), adam(w0, gw2), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(model.bias.detach(), adam(b0, gb2), rtol=1e-10, atol=1e-12)


def test_asam_eta_sgd_step_equals_hand_computation():
    """Kwon et al.'s T = |psi| + eta: e = rho T^2 g / ||T g||, then SGD with the gradient at psi + e."""
    model, x, y = regression_problem(4)
    with torch.no_grad():
        model.weight[0, 1] = 0.0  # a zero weight: perturbed only through eta
    w0, b0 = model.weight.detach().clone(), model.bias.detach().clone()
    rho, lr, eta = 0.5, 0.05, 0.01
    opt = SAM(torch.optim.SGD(model.parameters(), lr=lr), rho=rho, adaptive=True, eta=eta)
    probes = []
    closure = make_closure(model, x, y, [])

    def recording_closure():
        probes.append((model.weight.detach().clone(), model.bias.detach().clone()))
        return closure()

    opt.step(recording_closure)
    gw, gb = flat_gradient(w0, b0, x, y)
    tw, tb = w0.abs() + eta, b0.abs() + eta
    norm = torch.sqrt((tw * gw).pow(2).sum() + (tb * gb).pow(2).sum())
    ew, eb = rho * tw.pow(2) * gw / norm, rho * tb.pow(2) * gb / norm
    # the second gradient evaluation happens at psi + e ...
    torch.testing.assert_close(probes[1][0], w0 + ew, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(probes[1][1], b0 + eb, rtol=1e-12, atol=1e-14)
    assert abs(float(ew[0, 1])) > 0  # the zero weight moved: by rho eta^2 g / ||T g||
    assert float(ew[0, 1]) == pytest.approx(rho * eta**2 * float(gw[0, 1]) / float(norm), rel=1e-12)
    # ... and the step is SGD with that gradient from psi
    gw2, gb2 = flat_gradient(w0 + ew, b0 + eb, x, y)
    torch.testing.assert_close(model.weight.detach(), w0 - lr * gw2, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(model.bias.detach(), b0 - lr * gb2, rtol=1e-12, atol=1e-12)
    # the perturbation has T^-1-norm rho: it lies on the boundary of ASAM's neighbourhood
    inv_norm = torch.sqrt((ew / tw).pow(2).sum() + (eb / tb).pow(2).sum())
    assert float(inv_norm) == pytest.approx(rho, rel=1e-12)


def test_eta_zero_is_todays_asam_and_eta_is_ignored_by_plain_sam():
    results = {}
    for key, kwargs in {"asam": {"adaptive": True}, "asam_eta0": {"adaptive": True, "eta": 0.0},
                        "sam": {"adaptive": False}, "sam_eta": {"adaptive": False, "eta": 0.3}}.items():
        model, x, y = regression_problem(5)
        opt = SAM(torch.optim.Adam(model.parameters(), lr=0.01), rho=0.2, **kwargs)
        for _ in range(2):
            opt.step(make_closure(model, x, y, []))
        results[key] = [p.detach().clone() for p in model.parameters()]
    for a, b in ((results["asam"], results["asam_eta0"]), (results["sam"], results["sam_eta"])):
        for p, q in zip(a, b):
            assert torch.equal(p, q)
    assert not torch.equal(results["asam"][0], results["sam"][0])


def test_eta_validation_per_group_and_state_dict():
    model, x, y = regression_problem()
    with pytest.raises(ValueError, match="eta"):
        SAM(torch.optim.SGD(model.parameters(), lr=0.1), rho=0.1, adaptive=True, eta=-0.01)
    base = torch.optim.SGD([{"params": [model.weight]}, {"params": [model.bias], "eta": 0.5}], lr=0.1)
    opt = SAM(base, rho=0.1, adaptive=True, eta=0.01)
    assert [g["eta"] for g in opt.param_groups] == [0.01, 0.5]
    assert "eta=0.01" in repr(opt)
    opt.step(make_closure(model, x, y, []))
    saved = copy.deepcopy(opt.state_dict())
    assert [g["eta"] for g in saved["param_groups"]] == [0.01, 0.5]
    # a plain optimiser's state (no eta) loads with the default filled in
    plain = torch.optim.SGD(model.parameters(), lr=0.1)
    opt2 = SAM(torch.optim.SGD(model.parameters(), lr=0.1), rho=0.1, adaptive=True, eta=0.02)
    opt2.load_state_dict(plain.state_dict())
    assert opt2.param_groups[0]["eta"] == 0.02


def test_norm_spans_groups_and_rho_is_per_group():
    model, x, y = regression_problem(2)
    w0, b0 = model.weight.detach().clone(), model.bias.detach().clone()
    base = torch.optim.SGD([{"params": [model.weight]}, {"params": [model.bias], "rho": 0.3}], lr=0.1)
    opt = SAM(base, rho=0.1)
    opt.step(make_closure(model, x, y, []))
    gw, gb = flat_gradient(w0, b0, x, y)
    norm = torch.sqrt(gw.pow(2).sum() + gb.pow(2).sum())
    gw2, gb2 = flat_gradient(w0 + 0.1 * gw / norm, b0 + 0.3 * gb / norm, x, y)
    torch.testing.assert_close(model.weight.detach(), w0 - 0.1 * gw2)
    torch.testing.assert_close(model.bias.detach(), b0 - 0.1 * gb2)


def test_parameters_without_gradient_are_left_alone():
    model, x, y = regression_problem()
    unused = nn.Parameter(torch.ones(4))
    opt = SAM(torch.optim.SGD([*model.parameters(), unused], lr=0.1), rho=0.1)
    opt.step(make_closure(model, x, y, []))
    assert torch.equal(unused.detach(), torch.ones(4)) and unused.grad is None


def test_rho_zero_is_the_base_optimiser():
    model, x, y = regression_problem()
    ref = copy.deepcopy(model)
    base = torch.optim.Adam(model.parameters(), lr=0.01)
    assert wrap_sam(base, 0.0, adaptive=True) is base
    opt = SAM(torch.optim.Adam(model.parameters(), lr=0.01), rho=0.0)
    opt.step(make_closure(model, x, y, []))
    ref_opt = torch.optim.Adam(ref.parameters(), lr=0.01)
    ref_opt.step(make_closure(ref, x, y, []))
    for p, q in zip(model.parameters(), ref.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_step_without_closure_is_an_error():
    model, _, _ = regression_problem()
    with pytest.raises(ValueError, match="closure"):
        SAM(torch.optim.SGD(model.parameters(), lr=0.1), rho=0.1).step()


def test_param_groups_are_shared_and_schedulers_reach_the_base():
    model, x, y = regression_problem()
    base = torch.optim.Adam(model.parameters(), lr=0.1)
    opt = wrap_sam(base, 0.05, adaptive=True)
    assert opt.param_groups is base.param_groups
    assert opt.param_groups[0]["rho"] == 0.05 and opt.param_groups[0]["adaptive"] is True
    sched = LambdaLR(opt, lambda step: 0.1 * (step + 1))
    assert base.param_groups[0]["lr"] == pytest.approx(0.01)
    opt.step(make_closure(model, x, y, []))
    sched.step()
    assert base.param_groups[0]["lr"] == pytest.approx(0.02)


def test_state_dict_round_trip_continues_identically():
    model, x, y = regression_problem(3)

    def build(m):
        return SAM(torch.optim.Adam(m.parameters(), lr=0.02, betas=(0.5, 0.999)), rho=0.2, adaptive=True)

    opt = build(model)
    for _ in range(3):
        opt.step(make_closure(model, x, y, []))
    saved_model = copy.deepcopy(model.state_dict())
    saved_opt = copy.deepcopy(opt.state_dict())
    assert saved_opt["param_groups"][0]["rho"] == 0.2
    assert set(saved_opt["state"][0]) == {"step", "exp_avg", "exp_avg_sq"}  # only Adam's state

    for _ in range(2):
        opt.step(make_closure(model, x, y, []))

    clone, _, _ = regression_problem(3)
    clone.load_state_dict(saved_model)
    opt2 = SAM(torch.optim.Adam(clone.parameters(), lr=1.0), rho=9.0, adaptive=False)  # overwritten by load
    opt2.load_state_dict(saved_opt)
    assert opt2.param_groups is opt2.base_optimizer.param_groups
    assert opt2.param_groups[0]["rho"] == 0.2 and opt2.param_groups[0]["lr"] == 0.02
    for _ in range(2):
        opt2.step(make_closure(clone, x, y, []))
    for p, q in zip(model.parameters(), clone.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_plain_optimiser_state_loads_into_sam():
    model, x, y = regression_problem()
    adam = torch.optim.Adam(model.parameters(), lr=0.01)
    adam.step(make_closure(model, x, y, []))
    opt = SAM(torch.optim.Adam(model.parameters(), lr=0.01), rho=0.1, adaptive=True)
    opt.load_state_dict(adam.state_dict())
    assert opt.param_groups[0]["rho"] == 0.1
    opt.step(make_closure(model, x, y, []))  # runs with the defaults filled in
    assert int(opt.state_dict()["state"][0]["step"]) == 2


def bn_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 1))


def test_batchnorm_statistics_update_once_per_step_at_psi():
    model, ref = bn_model(), bn_model()
    x, y = torch.randn(32, 3), torch.randn(32, 1)
    opt = SAM(torch.optim.SGD(model.parameters(), lr=0.1), rho=0.5)
    calls: list[int] = []
    opt.step(make_closure(model, x, y, calls))
    ref(x)  # one training-mode forward at the unperturbed weights
    bn, ref_bn = model[1], ref[1]
    assert len(calls) == 2
    assert int(bn.num_batches_tracked) == 1
    torch.testing.assert_close(bn.running_mean, ref_bn.running_mean, rtol=0, atol=0)
    torch.testing.assert_close(bn.running_var, ref_bn.running_var, rtol=0, atol=0)


def test_running_stats_frozen_only_inside_the_block():
    model = bn_model()
    x = torch.randn(8, 3)
    with running_stats_frozen():
        model(x)
        model(x)
    assert int(model[1].num_batches_tracked) == 0
    assert torch.equal(model[1].running_mean, torch.zeros(5))
    model(x)
    assert int(model[1].num_batches_tracked) == 1
    model.eval()
    with running_stats_frozen():
        model(x)  # eval mode: nothing to freeze, nothing changes
    assert int(model[1].num_batches_tracked) == 1


# ---------------------------------------------------------------- inside the training loop
@pytest.mark.parametrize("players, wrapped", [("both", (True, True)), ("g", (True, False)), ("d", (False, True))])
def test_alternating_rule_wraps_the_chosen_players(players, wrapped):
    from occamgan.build import build_experiment
    from occamgan.config import build_config
    from occamgan.data.base import BatchSampler

    torch.set_default_dtype(torch.float32)
    cfg = build_config({}, ["data.n_samples=256", "train.batch_size=32", "model.width=8", "train.sam_rho=0.5",
                            f"train.sam_players={players}", "train.sam_adaptive=true"])
    exp = build_experiment(cfg)
    rule = exp.rule
    assert (isinstance(rule.opt_g, SAM), isinstance(rule.opt_d, SAM)) == wrapped
    calls = {"g": 0, "d": 0}
    loss_g, loss_d = exp.game.generator_loss, exp.game.discriminator_loss
    exp.game.generator_loss = lambda *a, **k: (calls.__setitem__("g", calls["g"] + 1), loss_g(*a, **k))[1]
    exp.game.discriminator_loss = lambda *a, **k: (calls.__setitem__("d", calls["d"] + 1), loss_d(*a, **k))[1]
    rule.step(exp.game, BatchSampler(exp.data.data, 32, 0).next)
    # two loss (and gradient) evaluations for a SAM player, one for a plain Adam player
    assert (calls["g"], calls["d"]) == (1 + wrapped[0], 1 + wrapped[1])


def test_sam_runs_resume_exactly(tmp_path, tiny_overrides):
    import occamgan
    from occamgan.train.checkpoint import load_checkpoint

    torch.set_default_dtype(torch.float32)
    # constant lr after the warm-up: a decay to train.steps would differ between 20 and 30 steps
    ov = tiny_overrides + ["train.sam_rho=0.3", "train.sam_adaptive=true", "train.warmup_steps=5", "train.lr_decay=none"]
    occamgan.train(overrides=ov + ["train.steps=30"], out=tmp_path / "full", progress=False)
    occamgan.train(overrides=ov + ["train.steps=20"], out=tmp_path / "part", progress=False)
    occamgan.train(overrides=["train.steps=30"], out=tmp_path / "part", resume=True, progress=False)
    a = load_checkpoint(tmp_path / "full" / "checkpoints" / "last.pt")
    b = load_checkpoint(tmp_path / "part" / "checkpoints" / "last.pt")
    assert a["rule"]["opt_g"]["param_groups"][0]["rho"] == 0.3
    for part in ("generator", "discriminator"):
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), f"{part}.{key}"


def test_sam_eta_reaches_the_optimiser_from_the_config():
    from occamgan.build import build_experiment
    from occamgan.config import build_config

    cfg = build_config({"data": {"n_samples": 64}, "model": {"depth": 1, "width": 8},
                        "train": {"sam_rho": 0.5, "sam_eta": 0.01, "batch_size": 16}})
    exp = build_experiment(cfg)
    assert exp.rule.opt_g.param_groups[0]["eta"] == 0.01 and exp.rule.opt_d.param_groups[0]["eta"] == 0.01
    off = build_experiment(build_config({"data": {"n_samples": 64}, "train": {"sam_rho": 0.5}}))
    assert off.rule.opt_g.param_groups[0]["eta"] == 0.0
