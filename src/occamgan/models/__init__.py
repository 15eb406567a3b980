"""Generator and discriminator families, by registry."""
from .._autoload import import_submodules
from .base import MODELS, ModelPair

import_submodules(__name__, __path__)

__all__ = ["MODELS", "ModelPair"]
