"""The Game: what is being optimised (architecture note, idea 1).

It owns the generator G, the critic D (None for MMD), the objective (a discriminator loss and an
independently chosen generator loss), the regularisers (sample transforms, penalties on D and G)
and MC-dropout averaging. It answers ``losses(real, z) -> (loss_d, loss_g)`` and, for update
rules that move one player at a time, ``discriminator_loss(real, fake)`` and
``generator_loss(real, fake)``. It knows nothing of optimisers.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import torch
from torch import Tensor, nn

from .objectives.base import GeneratorLoss, Objective
from .regularizers import Regularizer, sum_terms


class Game(nn.Module):
    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module | None,
        objective: Objective,
        latent_dim: int,
        generator_loss: GeneratorLoss | None = None,
        regularizers: Sequence[Regularizer] = (),
        n_mcd: int = 1,
        amp: bool = False,
    ):
        super().__init__()
        if objective.has_discriminator and discriminator is None:
            raise ValueError(f"objective {type(objective).__name__} needs a discriminator")
        self.generator = generator
        self.discriminator = discriminator if objective.has_discriminator else None
        self.objective = objective
        self.custom_generator_loss = generator_loss
        self.latent_dim = latent_dim
        self.regularizers = list(regularizers)
        self.n_mcd = n_mcd
        self.amp = amp

    # ------------------------------------------------------------------ properties
    @property
    def has_discriminator(self) -> bool:
        return self.discriminator is not None

    @property
    def zero_sum(self) -> bool:
        """True when a single value f (G minimises, D maximises) describes the game."""
        return self.custom_generator_loss is None and (
            self.objective.zero_sum or not self.has_discriminator
        )

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device

    def generator_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.generator.parameters() if p.requires_grad]

    def discriminator_parameters(self) -> list[nn.Parameter]:
        if self.discriminator is None:
            return []
        return [p for p in self.discriminator.parameters() if p.requires_grad]

    # ------------------------------------------------------------------ forward pieces
    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """z ~ N(0, I_P): the only stochastic input of the model (partial stochasticity)."""
        z = torch.randn(n, self.latent_dim, generator=generator, device="cpu" if generator else self.device)
        return z.to(self.device)

    def autocast(self) -> contextlib.AbstractContextManager:
        """bfloat16 autocast on CUDA when ``train.amp`` is on (no loss scaling needed)."""
        if self.amp and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def generate(self, z: Tensor) -> Tensor:
        with self.autocast():
            return self.generator(z).float()

    def critic(self, x: Tensor) -> Tensor:
        assert self.discriminator is not None
        with self.autocast():
            return self.discriminator(x).float().reshape(-1)

    def relax(self, fake: Tensor) -> Tensor:
        """Training-time sample transforms (likelihood relaxation), applied to every fake."""
        for reg in self.regularizers:
            fake = reg.transform_fake(fake)
        return fake

    # ------------------------------------------------------------------ losses
    def discriminator_loss(self, real: Tensor, fake: Tensor) -> Tensor:
        """L_D on a real batch and a fake batch (pass ``fake.detach()`` for a critic step)."""
        return self._mean_over_passes(lambda: self._discriminator_loss(real, self.relax(fake)))

    def generator_loss(self, real: Tensor, fake: Tensor) -> Tensor:
        """L_G (plus generator penalties) for fakes that carry the generator's graph."""
        loss = self._mean_over_passes(lambda: self._generator_adversarial(real, self.relax(fake)))
        return self._with_generator_penalties(loss)

    def losses(self, real: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        """Both losses from one generator forward pass, each with its full graph (competitive
        rules differentiate L_D w.r.t. G and L_G w.r.t. D). The same relaxed fakes feed both."""
        fake = self.relax(self.generate(z))
        if not self.has_discriminator:
            loss = self.objective.sample_loss(real, fake)
            return -loss, self._with_generator_penalties(loss)
        loss_d = self._discriminator_loss(real, fake)
        loss_g = self._with_generator_penalties(self._generator_adversarial(real, fake))
        return loss_d, loss_g

    def _discriminator_loss(self, real: Tensor, fake: Tensor) -> Tensor:
        d_real, d_fake = self.critic(real), self.critic(fake)
        loss = self.objective.discriminator_loss(d_real, d_fake)
        terms = [self.objective.penalty(self.critic, real, fake)]
        terms += [r.discriminator_penalty(self.critic, real, fake) for r in self.regularizers]
        extra = sum_terms(terms)
        return loss if extra is None else loss + extra

    def _generator_adversarial(self, real: Tensor, fake: Tensor) -> Tensor:
        if not self.has_discriminator:
            return self.objective.sample_loss(real, fake)
        loss_fn = self.custom_generator_loss
        needs_real = loss_fn.needs_real if loss_fn else self.objective.generator_needs_real
        d_real = self.critic(real).detach() if needs_real else None
        d_fake = self.critic(fake)
        if loss_fn is not None:
            return loss_fn(d_real, d_fake)
        return self.objective.generator_loss(d_real, d_fake)

    def _with_generator_penalties(self, loss: Tensor) -> Tensor:
        extra = sum_terms([r.generator_penalty(loss, self.generator) for r in self.regularizers])
        return loss if extra is None else loss + extra

    def _mean_over_passes(self, compute) -> Tensor:
        """MC dropout: average the loss over ``n_mcd`` stochastic passes (fresh dropout masks)."""
        total = compute()
        for _ in range(self.n_mcd - 1):
            total = total + compute()
        return total / self.n_mcd if self.n_mcd > 1 else total

    # ------------------------------------------------------------------ utilities
    @contextlib.contextmanager
    def frozen_discriminator(self) -> Iterator[None]:
        """Skip weight gradients of D during a generator step (gradients still flow through D)."""
        params = self.discriminator_parameters()
        for p in params:
            p.requires_grad_(False)
        try:
            yield
        finally:
            for p in params:
                p.requires_grad_(True)
