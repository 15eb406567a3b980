"""Objectives (discriminator losses with their default generator losses) and generator losses."""
from .._autoload import import_submodules
from .base import GENERATOR_LOSSES, OBJECTIVES, Objective

import_submodules(__name__, __path__)

__all__ = ["OBJECTIVES", "GENERATOR_LOSSES", "Objective"]
