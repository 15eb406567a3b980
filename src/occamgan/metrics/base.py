"""The metric registry for metrics that users select by name (``eval.metrics``)."""
from __future__ import annotations

from typing import Callable

from ..registry import Registry

#: name -> metric callable; see each metric module for its signature
METRICS: Registry[Callable[..., object]] = Registry("metric")
