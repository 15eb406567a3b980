"""Update rules: how the players move (alternating, SAM-wrapped, competitive)."""
from .._autoload import import_submodules
from .base import UPDATE_RULES, UpdateRule

import_submodules(__name__, __path__)

__all__ = ["UPDATE_RULES", "UpdateRule"]
