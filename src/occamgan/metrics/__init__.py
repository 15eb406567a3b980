"""Metrics: toy-data scores and image metrics, by registry."""
from .._autoload import import_submodules
from .base import METRICS

import_submodules(__name__, __path__)

__all__ = ["METRICS"]
