"""MLP generator and critic for toy data (docs/methods.md section 2, "Toy MLPs").

``depth`` counts hidden layers; depth 0 makes the network one linear map (the paper's linear
generator in the Gaussian experiment). Dropout (rate ``model.dropout``) follows every hidden
activation so MC dropout can be used in training and sampling.
"""
from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field
from torch import Tensor, nn

from ..params import Params
from .base import MODELS, ModelPair

ACTIVATIONS = {
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
}


def mlp(n_in: int, n_out: int, depth: int, width: int, activation: str, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    size = n_in
    for _ in range(depth):
        layers += [nn.Linear(size, width), ACTIVATIONS[activation]()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        size = width
    layers.append(nn.Linear(size, n_out))
    return nn.Sequential(*layers)


class MLPGenerator(nn.Module):
    def __init__(self, latent_dim: int, sample_shape: tuple[int, ...], depth: int, width: int,
                 activation: str, dropout: float):
        super().__init__()
        self.sample_shape = tuple(sample_shape)
        self.net = mlp(latent_dim, math.prod(sample_shape), depth, width, activation, dropout)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).view(-1, *self.sample_shape)


class MLPCritic(nn.Module):
    def __init__(self, sample_shape: tuple[int, ...], depth: int, width: int, activation: str, dropout: float):
        super().__init__()
        self.net = mlp(math.prod(sample_shape), 1, depth, width, activation, dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.flatten(1)).squeeze(1)


class MLPParams(Params):
    #: hidden layers of the MLPs; 0 makes a network a single linear map
    depth: int = Field(2, ge=0)
    #: hidden width of the generator MLP
    width: int = Field(128, ge=1)
    #: critic depth/width; None -> same as the generator
    d_depth: int | None = Field(None, ge=0)
    d_width: int | None = Field(None, ge=1)
    activation: Literal["leaky_relu", "relu", "tanh", "elu", "gelu", "silu"] = "leaky_relu"


@MODELS.register("mlp", params=MLPParams)
def build_mlp(cfg: Any, sample_shape: tuple[int, ...], with_discriminator: bool) -> ModelPair:
    g = MLPGenerator(cfg.latent_dim, sample_shape, cfg.depth, cfg.width, cfg.activation, cfg.dropout)
    d = None
    if with_discriminator:
        depth = cfg.depth if cfg.d_depth is None else cfg.d_depth
        width = cfg.width if cfg.d_width is None else cfg.d_width
        d = MLPCritic(sample_shape, depth, width, cfg.activation, cfg.dropout)
    return ModelPair(g, d)
