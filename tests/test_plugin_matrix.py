"""One training step of every objective x update rule x regulariser switch, and of every generator
loss x update rule, at tiny size, built from the registries' names: a new plug-in is covered
without editing this file. Which combinations must be refused follows from the plug-ins' declared
properties (the table INVALID below); every other one must take a finite step that moves the
generator, and every refused one must be a one-line ConfigError before anything trains."""
from __future__ import annotations

import math

import pytest
import torch

from occamgan.build import build_experiment
from occamgan.config import build_config
from occamgan.errors import ConfigError
from occamgan.plugins import GENERATOR_LOSSES, OBJECTIVES, REGULARIZERS, UPDATE_RULES

TINY = {"data": {"name": "ring8", "n_samples": 64}, "model": {"depth": 1, "width": 8},
        "eval": {"n_samples": 32}}
#: a value that switches each regulariser on
SWITCH_ON = {"sigma": 0.1, "grad_reg": 0.1, "grad_reg_authors": False, "grad_reg_samples": 0.1, "r1": 1.0, "r2": 1.0}
#: knobs that keep a step cheap (competitive solves) where a rule has them
CHEAP = {"cg_max_iter": 5, "gmres_restart": 5}


def _objective(name: str):
    return OBJECTIVES.create(name)


def _rule(name: str):
    return UPDATE_RULES.get(name)


def _regularizer(name: str):
    params = REGULARIZERS.params(name)(**{k: SWITCH_ON[k] for k in REGULARIZERS.params(name).model_fields})
    return REGULARIZERS.get(name)(params)


# (why, predicate(objective, generator loss name, rule class, regulariser or None)): a combination
# matching any row must be refused with a ConfigError whose message contains the fragment
INVALID = [  # in the order the builder checks them
    ("has no critic", lambda obj, loss, rule, reg: loss != "default" and not obj.has_discriminator),
    ("penalises the critic", lambda obj, loss, rule, reg: reg is not None and reg.needs_discriminator
     and not obj.has_discriminator),
    ("needs a critic", lambda obj, loss, rule, reg: rule.requires_discriminator and not obj.has_discriminator),
    ("zero-sum", lambda obj, loss, rule, reg: rule.requires_zero_sum and obj.has_discriminator and (
        loss != "default" or not obj.zero_sum or (reg is not None and reg.penalises_generator))),
]


def expected_refusal(objective: str, loss: str, rule: str, regularizer: str | None) -> str | None:
    obj, reg = _objective(objective), _regularizer(regularizer) if regularizer else None
    for fragment, applies in INVALID:
        if applies(obj, loss, _rule(rule), reg):
            return fragment
    return None


def tree(objective: str, loss: str, rule: str, regularizer: str | None) -> dict:
    rule_knobs = {k: v for k, v in CHEAP.items() if k in UPDATE_RULES.params(rule).model_fields}
    regs = {k: SWITCH_ON[k] for k in REGULARIZERS.params(regularizer).model_fields} if regularizer else {}
    return {**TINY, "objective": {"name": objective, "generator_loss": loss},
            "train": {"update": rule, "batch_size": 16, "device": "cpu", **rule_knobs}, "regularizers": regs}


def check_one_step(objective: str, loss: str, rule: str, regularizer: str | None) -> None:
    refusal = expected_refusal(objective, loss, rule, regularizer)
    cfg = build_config(tree(objective, loss, rule, regularizer))
    if refusal is not None:
        with pytest.raises(ConfigError, match=refusal):
            build_experiment(cfg)
        return
    torch.manual_seed(0)
    exp = build_experiment(cfg)
    before = [p.detach().clone() for p in exp.game.generator_parameters()]
    stats = exp.rule.step(exp.game, exp.data.batch_sampler(16, seed=0).next)
    losses = {k: float(v) for k, v in stats.items() if k.startswith("loss")}
    assert losses and all(math.isfinite(v) for v in losses.values()), losses
    assert any(not torch.equal(a, b) for a, b in zip(before, exp.game.generator_parameters()))


REGULARIZER_SWITCHES = [None, *REGULARIZERS.names()]


@pytest.mark.parametrize("regularizer", REGULARIZER_SWITCHES, ids=str)
@pytest.mark.parametrize("rule", UPDATE_RULES.names())
@pytest.mark.parametrize("objective", OBJECTIVES.names())
def test_objective_rule_regularizer(objective, rule, regularizer):
    check_one_step(objective, "default", rule, regularizer)


@pytest.mark.parametrize("rule", UPDATE_RULES.names())
@pytest.mark.parametrize("loss", GENERATOR_LOSSES.names())
def test_generator_loss_rule(loss, rule):
    check_one_step("ns", loss, rule, None)


def test_the_matrix_covers_every_registry():
    assert len(OBJECTIVES.names()) >= 12 and len(UPDATE_RULES.names()) >= 5
    assert len(GENERATOR_LOSSES.names()) >= 20 and len(REGULARIZERS.names()) >= 4
    # the table refuses something in every row and accepts most combinations
    refused = {expected_refusal(o, "default", r, g) for o in OBJECTIVES.names() for r in UPDATE_RULES.names()
               for g in REGULARIZER_SWITCHES}
    assert {f for f, _ in INVALID} - {"has no critic"} <= refused
    assert expected_refusal("mmd", "ns", "alternating", None) == "has no critic"
