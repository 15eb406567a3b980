"""Every registry of built-in plug-ins, populated on import."""
from .data import DATASETS
from .metrics import METRICS
from .models import MODELS
from .objectives import GENERATOR_LOSSES, OBJECTIVES
from .regularizers import REGULARIZERS
from .update_rules import UPDATE_RULES

__all__ = ["DATASETS", "METRICS", "MODELS", "GENERATOR_LOSSES", "OBJECTIVES", "REGULARIZERS", "UPDATE_RULES"]
