"""Occam regularisers, one file each, by registry (likelihood relaxation, gradient
regularisation, R1, R2); adding one is a new file here."""
from .._autoload import import_submodules
from .base import REGULARIZERS, Regularizer, build_regularizers, sum_terms

import_submodules(__name__, __path__)

from .gradient_norm import GradientNormRegularizer  # noqa: E402  (public names of the built-ins)
from .input_gradient import InputGradientPenalty  # noqa: E402
from .relaxation import LikelihoodRelaxation  # noqa: E402

__all__ = ["REGULARIZERS", "GradientNormRegularizer", "InputGradientPenalty", "LikelihoodRelaxation", "Regularizer",
           "build_regularizers", "sum_terms"]
