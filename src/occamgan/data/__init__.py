"""Data sets: toy 2-D sets and image sets, by registry."""
from .._autoload import import_submodules
from .base import DATASETS, DataSource

import_submodules(__name__, __path__)

__all__ = ["DATASETS", "DataSource"]
