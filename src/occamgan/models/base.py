"""The model-family interface: a factory builds the generator and the critic together."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

from ..registry import Registry


@dataclass
class ModelPair:
    generator: nn.Module
    #: None for objectives without a critic (MMD on raw samples)
    discriminator: nn.Module | None


#: name -> factory(ModelConfig, sample_shape: tuple[int, ...], with_discriminator: bool) -> ModelPair
MODELS: Registry[Callable[..., ModelPair]] = Registry("model")


def build_models(cfg: Any, sample_shape: tuple[int, ...], with_discriminator: bool) -> ModelPair:
    return MODELS.get(cfg.model.name)(cfg.model, sample_shape, with_discriminator)
