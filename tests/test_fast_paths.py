"""GPU fast paths as config switches, checked on the CPU (docs/scaling.md, "Single-GPU fast
paths"): ``train.amp`` (bfloat16 autocast with the twice-differentiated graphs in float32) and
``train.compile`` (torch.compile of the players' forwards).

The CPU runs the same autocast and the same compiler front end as CUDA (bfloat16 autocast;
torch.compile with the ``aot_eager`` backend, which traces exactly what inductor would compile
but runs it eagerly, so no C++ toolchain is needed). On a GPU the kernels differ (rounding, and
inductor's fused kernels) and so does the speed; the policy checked here, which forward runs in
which dtype and compiled or eager, is the same.
"""
from __future__ import annotations

import collections
import logging

import pytest
import torch
from torch import nn

TOY = ["train.device=cpu", "train.lr_decay=none", "train.batch_size=64", "model.width=32", "model.depth=2",
       "data.n_samples=512"]
DCGAN = ["train.device=cpu", "train.lr_decay=none", "train.batch_size=16", "model.name=dcgan", "data.name=digits",
         "data.image_size=16", "model.ngf=8", "model.ndf=8"]


def build(overrides: list[str]):
    from occamgan.api import resolve_config
    from occamgan.build import build_experiment
    from occamgan.train.checkpoint import set_rng_state
    from occamgan.train.trainer import BATCH_SEED_OFFSET

    cfg = resolve_config(None, overrides)
    exp = build_experiment(cfg)
    sampler = exp.data.batch_sampler(cfg.train.batch_size, cfg.seed + BATCH_SEED_OFFSET, exp.device)
    set_rng_state(exp.init_rng)
    return exp, sampler


def flat(module: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten().clone() for p in module.parameters()])


def first_layer(module: nn.Module) -> nn.Module:
    return next(m for m in module.modules() if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)))


# --------------------------------------------------------------------------- train.amp
#: case -> overrides and the dtypes that the first layer of G and of D compute in, over one step
#: (counted per forward call; the alternating rule generates one fake batch for both players):
#: what the Game keeps in float32 under bf16 autocast
PRECISION = {
    # a critic step sees real (R1 point: float32), fake (bf16) and WGAN-GP's interpolates
    # (float32); the generator step's critic and G run in bf16
    "wgan_gp_r1": (["objective.name=wgan_gp", "regularizers.r1=0.1"],
                   {torch.bfloat16: 1}, {torch.float32: 2, torch.bfloat16: 2}),
    # no double backward anywhere: every forward in bf16
    "minimax": (["objective.name=minimax"], {torch.bfloat16: 1}, {torch.bfloat16: 3}),
    # gradient regularisation differentiates dL_G/dpsi: the generator step in float32, G always
    "grad_reg": (["objective.name=minimax", "regularizers.grad_reg=0.1"],
                 {torch.float32: 1}, {torch.bfloat16: 2, torch.float32: 1}),
    # competitive rules take mixed Hessian-vector products: everything in float32
    "acgd": (["objective.name=wgan_gp", "train.update=acgd"], {torch.float32: 1}, {torch.float32: 3}),
}


@pytest.mark.parametrize("case", sorted(PRECISION))
def test_amp_keeps_every_twice_differentiated_graph_in_float32(case):
    overrides, want_g, want_d = PRECISION[case]
    exp, sampler = build(TOY + overrides + ["train.amp=true"])
    seen = {"g": collections.Counter(), "d": collections.Counter()}
    for key, player in (("g", exp.game.generator), ("d", exp.game.discriminator)):
        first_layer(player).register_forward_hook(lambda m, i, out, key=key: seen[key].update([out.dtype]))
    exp.rule.step(exp.game, sampler.next)
    assert dict(seen["g"]) == want_g
    assert dict(seen["d"]) == want_d


def test_evaluation_runs_in_float32_under_amp():
    """Metrics take second derivatives (sharpness): run_metrics disables the autocast."""
    from occamgan.evaluation import run_metrics
    from occamgan.metrics.base import EvalContext

    exp, sampler = build(TOY + ["objective.name=minimax", "train.amp=true"])
    seen = collections.Counter()
    first_layer(exp.game.discriminator).register_forward_hook(lambda m, i, out: seen.update([out.dtype]))
    params = exp.cfg.eval.model_copy(update={"sharpness_batches": 1})
    ctx = EvalContext(params=params, seed=0, n=64, data=exp.data, game=exp.game, generator=exp.game.generator,
                      train_batch_size=64)
    run_metrics(["sharpness"], ctx)
    assert seen and set(seen) == {torch.float32}


#: case -> overrides; the bf16 step must stay close to the float32 one (tolerances below)
AGREEMENT = {
    "mlp_wgan_gp_r1": TOY + ["objective.name=wgan_gp", "regularizers.r1=0.1"],
    "mlp_minimax": TOY + ["objective.name=minimax"],
    "dcgan_wgan_div": DCGAN + ["objective.name=wgan_div"],
}


@pytest.mark.parametrize("case", sorted(AGREEMENT))
def test_amp_steps_agree_with_float32_within_the_stated_tolerance(case):
    """bf16 keeps ~3 significant digits: the first critic loss agrees within 2e-3 relative;
    after 3 Adam steps the parameters' displacement differs by less than 30 % of its norm (Adam
    normalises each coordinate, so bf16 rounding of tiny gradients moves whole steps; measured
    3-13 %). The difference is not zero, so the autocast did act."""
    runs = {}
    for amp in (False, True):
        exp, sampler = build(AGREEMENT[case] + [f"train.amp={str(amp).lower()}"])
        start = flat(exp.game)
        stats = [exp.rule.step(exp.game, sampler.next) for _ in range(3)]
        runs[amp] = (start, flat(exp.game), float(stats[0]["loss_d"]))
    (start, plain, loss_plain), (_, fast, loss_fast) = runs[False], runs[True]
    assert abs(loss_fast - loss_plain) <= 2e-3 * abs(loss_plain)
    displacement = float((fast - plain).norm() / (plain - start).norm())
    assert 0 < displacement < 0.3


def test_amp_leaves_the_competitive_rules_bit_exact():
    results = []
    for amp in ("false", "true"):
        exp, sampler = build(TOY + ["objective.name=wgan_gp", "train.update=acgd", f"train.amp={amp}"])
        for _ in range(2):
            exp.rule.step(exp.game, sampler.next)
        results.append(flat(exp.game))
    assert torch.equal(*results)


def test_a_run_under_amp_says_what_stays_in_float32(tmp_path, caplog):
    import occamgan

    with caplog.at_level(logging.WARNING, logger="occamgan"):
        occamgan.train(overrides=TOY + ["objective.name=wgan_gp", "regularizers.grad_reg=0.01", "train.amp=true",
                                        "train.steps=2", "eval.n_samples=64", "eval.w2_samples=32",
                                        "train.report=false"], out=tmp_path / "r", progress=False)
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("train.amp")]
    assert "float32 and eager" in line
    assert "GradientNormRegularizer" in line and "gradient-penalty points" in line


# --------------------------------------------------------------------------- train.compile
COMPILE = ["train.compile=true", "train.compile_backend=aot_eager"]

#: compiled forwards where differentiated once, eager where differentiated twice; the steps
#: are the eager ones up to float rounding
COMPILED = {
    "mlp_wgan_gp_r1": TOY + ["objective.name=wgan_gp", "regularizers.r1=0.1"],
    "mlp_grad_reg_sam": TOY + ["objective.name=minimax", "regularizers.grad_reg=0.1", "train.sam_rho=0.05"],
    "dcgan_wgan_div": DCGAN + ["objective.name=wgan_div"],
    # SAM's second pass keeps BatchNorm's running statistics: the BN generator runs eager there
    "dcgan_sam": DCGAN + ["objective.name=minimax", "train.sam_rho=0.05"],
    # a competitive rule differentiates every forward twice: all eager, hence exact
    "acgd": TOY + ["objective.name=wgan_gp", "train.update=acgd"],
}


@pytest.mark.parametrize("case", sorted(COMPILED))
def test_compiled_players_take_the_eager_steps(case):
    results = []
    for extra in ([], COMPILE):
        exp, sampler = build(COMPILED[case] + extra)
        start = flat(exp.game)
        for _ in range(3):
            exp.rule.step(exp.game, sampler.next)
        results.append((start, flat(exp.game), exp))
    (start, eager, exp_e), (start_c, compiled, exp) = results
    assert torch.equal(start, start_c)
    assert float((compiled - eager).norm() / (eager - start).norm()) < 1e-5
    for name, buffer in exp_e.game.named_buffers():  # BatchNorm running statistics
        other = dict(exp.game.named_buffers())[name]
        assert torch.allclose(other.double(), buffer.double(), rtol=1e-5, atol=1e-6), name
    assert set(exp.game._compiled) == {"g", "d"}
    # the modules themselves are not wrapped: checkpoints keep their keys
    assert not any("_orig_mod" in k for k in exp.game.generator.state_dict())


def test_compile_counts_graph_breaks():
    """The record counts what Dynamo met: none for a plain MLP, one per call where the
    generator's forward breaks the graph (a hook that calls torch._dynamo.graph_break)."""
    from occamgan.compilation import compile_record

    counts = []
    for breaking in (False, True):
        exp, sampler = build(TOY + ["objective.name=minimax"] + COMPILE)
        if breaking:
            first_layer(exp.game.generator).register_forward_hook(lambda m, i, out: torch._dynamo.graph_break())
        exp.rule.step(exp.game, sampler.next)
        counts.append(compile_record("aot_eager", "default")["graph_breaks"])
    assert counts[0] == 0
    assert counts[1] >= 1


@pytest.mark.parametrize("overrides, key", [
    (["train.compile_backend=no_such_backend"], "train.compile_backend"),
    (["train.compile_mode=max-autotune"], "train.compile_mode"),
])
def test_a_bad_compile_setting_is_one_config_error_naming_the_key(overrides, key):
    from occamgan.errors import ConfigError

    with pytest.raises(ConfigError, match=key):
        build(TOY + COMPILE + overrides)


def test_a_failing_compiler_backend_is_one_line_naming_the_switch(tmp_path):
    """A backend that cannot compile (here one registered to fail, as inductor does without a
    C++ toolchain) stops the run with one line, before any checkpoint."""
    import torch._dynamo

    from occamgan.errors import TrainingError

    @torch._dynamo.register_backend(name="occamgan_test_failing")
    def failing(graph, example_inputs):
        raise RuntimeError("no compiler here")

    import occamgan

    with pytest.raises(TrainingError, match=r"^train.compile: backend 'occamgan_test_failing' failed to compile the "
                                            r"(generator|critic) \(.*no compiler here.*train.compile=false"):
        occamgan.train(overrides=TOY + ["train.compile=true", "train.compile_backend=occamgan_test_failing",
                                        "train.steps=2"], out=tmp_path / "r", progress=False)
    assert not (tmp_path / "r" / "checkpoints" / "last.pt").exists()
