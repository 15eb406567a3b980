"""The base of every plug-in's parameter model.

A plug-in (objective, generator loss, regulariser, update rule, model, metric) declares the knobs
it reads as a small pydantic model in its own file and registers it with itself
(``OBJECTIVES.add("wgan_gp", factory, params=GradientPenaltyParams)``); the config schema composes
the sections from these models (:mod:`occamgan.config`), so a knob is validated where it is used
and a knob of another plug-in is an error, not silence (compare_gan binds parameters to the
function that reads them).
"""
from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, field_validator


class Params(BaseModel):
    """Parameters of one plug-in: unknown keys are errors, floats must be finite."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @field_validator("*", mode="after")
    @classmethod
    def _finite(cls, value: object) -> object:
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value


#: the largest seed accepted: torch seeds are 64-bit, and the streams derived from a seed add small
#: offsets to it (batches +1, evaluation +2, held-out draws +7919, ...)
MAX_SEED = 2**63 - 1


class NoParams(Params):
    """A plug-in without knobs."""
