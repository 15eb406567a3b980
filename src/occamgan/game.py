"""The Game: what is being optimised (architecture note, idea 1).

It owns the generator G, the critic D (None for MMD), the objective (a discriminator loss and an
independently chosen generator loss), the regularisers (sample transforms, penalties on D and G)
and MC-dropout averaging. It answers ``losses(real, z) -> (loss_d, loss_g)`` and, for update
rules that move one player at a time, ``discriminator_loss(real, fake, z)`` and
``generator_loss(real, fake, z)`` (``z`` optional: the latents of ``fake``, used by MC dropout).
It knows nothing of optimisers.

A discriminator loss evaluates the critic once per real and once per fake batch, in a
:class:`~occamgan.objectives.critic_pass.CriticPass` that the loss and every penalty share: input
gradients at those batches (WGAN-div, R1, R2) come from the loss's own forward, not new ones.
"""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator, Sequence

import torch
from torch import Tensor, nn

from .bayes.mc_dropout import has_batch_coupling
from .models import running_stats
from .objectives.base import GeneratorLoss, Objective
from .objectives.critic_pass import CriticPass
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
        self._twice_depth = 0
        #: compiled wrappers of G and D ("g", "d"; train.compile), kept out of the module tree
        self._compiled: dict[str, Callable[[Tensor], Tensor]] = {}
        #: a generator penalty that is a function of a gradient of L_G (gradient regularisation)
        #: is differentiated again through G and D: the generator step then runs float32, eager
        self.twice_differentiated_generator_step = any(r.second_order_generator for r in self.regularizers)
        #: run the n_mcd MC-dropout passes as one stacked batch where the networks allow it
        self.batch_mc_passes = True

    # ------------------------------------------------------------------ properties
    @property
    def has_discriminator(self) -> bool:
        return self.discriminator is not None

    @property
    def zero_sum(self) -> bool:
        """True when a single value f (G minimises, D maximises) describes the game: the
        objective's own generator loss of a zero-sum objective (or no critic), and no regulariser
        that adds a term to L_G alone (a penalty on G's loss makes the game general-sum)."""
        own_loss = self.custom_generator_loss is None and (self.objective.zero_sum or not self.has_discriminator)
        return own_loss and not any(r.penalises_generator for r in self.regularizers)

    def after_discriminator_step(self) -> None:
        """What follows every critic optimiser step (WGAN weight clipping): update rules call
        this instead of reaching into the objective."""
        if self.discriminator is not None:
            self.objective.after_discriminator_step(self.discriminator)

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

    # ------------------------------------------------------------------ fast paths
    # ``train.amp`` runs the forwards of G and D under bfloat16 autocast (bf16 has float32's
    # range, so no loss scaling) and ``train.compile`` through torch.compile'd wrappers of them.
    # A graph that is differentiated twice runs in float32 and eager instead: its first
    # derivative is itself a training signal, and AOT autograd cannot differentiate a compiled
    # graph twice. Those graphs: the critic at the points where a penalty takes grad_x D
    # (WGAN-GP/div, R1, R2), the whole generator step under a penalty on a gradient of L_G
    # (gradient regularisation, the MMD sample gradient), every step of the competitive rules
    # (mixed Hessian-vector products) and every evaluation (sharpness, evidence).
    def compile_players(self, backend: str, mode: str = "default") -> None:
        """``train.compile``: compiled wrappers of G and D for the forwards differentiated once
        (the modules themselves, their state and checkpoints are unchanged)."""
        from .compilation import compile_module, reset_counters

        reset_counters()
        self._compiled = {"g": compile_module(self.generator, backend, mode, "generator")}
        if self.discriminator is not None:
            self._compiled["d"] = compile_module(self.discriminator, backend, mode, "critic")

    def autocast(self) -> contextlib.AbstractContextManager:
        """bfloat16 autocast when ``train.amp`` is on, outside :meth:`differentiated_twice`."""
        if self.amp and self._twice_depth == 0:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def differentiated_twice(self, enabled: bool = True) -> Iterator[None]:
        """Forwards inside run in float32 and eager, whatever ``train.amp`` and
        ``train.compile`` say; ``enabled=False`` changes nothing."""
        self._twice_depth += int(enabled)
        try:
            yield
        finally:
            self._twice_depth -= int(enabled)

    def _player(self, key: str, eager: nn.Module) -> Callable[[Tensor], Tensor]:
        """The compiled wrapper where it may run: not in a twice-differentiated graph, and not
        in a probe pass that freezes running statistics (SAM's second pass) of a player with
        BatchNorm, whose global hook compiled code would not call."""
        compiled = self._compiled.get(key)
        if compiled is None or self._twice_depth or (running_stats.frozen() and running_stats.tracks_running_stats(eager)):
            return eager
        return compiled

    def eager_parts(self, second_order_rule: bool = False) -> list[str]:
        """What runs in float32 and eager for this game (and a rule that takes mixed second
        derivatives): the parts the run names when it starts under amp or compile."""
        if second_order_rule:
            return ["every step (the update rule takes mixed Hessian-vector products)"]
        parts = []
        if self.twice_differentiated_generator_step:
            names = [type(r).__name__ for r in self.regularizers if r.second_order_generator]
            parts.append(f"the generator step ({', '.join(names)} differentiates a gradient of L_G)")
        if self.has_discriminator and (self.objective.has_penalty or any(r.input_gradient_points for r in self.regularizers)):
            parts.append("the critic at gradient-penalty points (grad_x D is differentiated again)")
        return parts

    def generate(self, z: Tensor) -> Tensor:
        with self.differentiated_twice(self.twice_differentiated_generator_step), self.autocast():
            return _at_least_float32(self._player("g", self.generator)(z))

    def critic(self, x: Tensor) -> Tensor:
        assert self.discriminator is not None
        with self.autocast():
            return _at_least_float32(self._player("d", self.discriminator)(x)).reshape(-1)

    def critic_at_gradient(self, x: Tensor) -> Tensor:
        """The critic where a penalty differentiates its input gradient: float32, eager."""
        with self.differentiated_twice():
            return self.critic(x)

    def relax(self, fake: Tensor) -> Tensor:
        """Training-time sample transforms (likelihood relaxation), applied to every fake."""
        for reg in self.regularizers:
            fake = reg.transform_fake(fake)
        return fake

    # ------------------------------------------------------------------ losses
    def discriminator_loss(self, real: Tensor, fake: Tensor, z: Tensor | None = None) -> Tensor:
        """L_D on a real batch and a fake batch (pass ``fake.detach()`` for a critic step).

        With ``n_mcd > 1`` it is averaged over MC-dropout passes (see :meth:`fake_passes`): pass
        the latents ``z`` of ``fake`` so that every pass also draws fresh generator masks."""
        return self._discriminator_loss_passes(real, self.relax(self.fake_passes(fake, z)))

    def generator_loss(self, real: Tensor, fake: Tensor, z: Tensor | None = None) -> Tensor:
        """L_G (plus generator penalties) for fakes that carry the generator's graph; averaged
        over MC-dropout passes as :meth:`discriminator_loss` (pass ``z`` for fresh G masks)."""
        with self.differentiated_twice(self.twice_differentiated_generator_step):
            loss = self._generator_adversarial_passes(real, self.relax(self.fake_passes(fake, z)))
            return self._with_generator_penalties(loss)

    def losses(self, real: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        """Both losses from one (stacked) generator forward pass, each with its full graph
        (competitive rules differentiate L_D w.r.t. G and L_G w.r.t. D). The same relaxed fakes
        and the same critic outputs feed both; with ``n_mcd > 1`` both average the same passes."""
        with self.differentiated_twice(self.twice_differentiated_generator_step):
            return self._losses(real, z)

    def _losses(self, real: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        n = self.n_mcd
        fakes = self.relax(self.generate_passes(z, n))
        if not self.has_discriminator:
            loss = self._mean_over_chunks(lambda k, f: self.objective.sample_loss(real, f), fakes, n)
            return -loss, self._with_generator_penalties(loss)
        if n > 1 and not self._batches_passes(self.discriminator):
            loss_d = self._mean_over_chunks(lambda k, f: self._discriminator_loss(real, f), fakes, n)
            loss_g = self._mean_over_chunks(lambda k, f: self._generator_adversarial(real, f), fakes, n)
            return loss_d, self._with_generator_penalties(loss_g)
        passed = self.critic_pass(_tile(real, n), fakes)
        d_real, d_fake = passed.d_real.view(n, -1), passed.d_fake.view(n, -1)
        loss_d = self._stacked_discriminator_loss(passed, n)
        needs_real = self._generator_needs_real()
        loss_g = sum(self._generator_loss_of_logits(d_real[k].detach() if needs_real else None, d_fake[k])
                     for k in range(n)) / n
        return loss_d, self._with_generator_penalties(loss_g)

    def objective_discriminator_loss(self, real: Tensor, fake: Tensor) -> Tensor:
        """The objective's own L_D (with its penalty, e.g. WGAN-GP) on one deterministic pass: no
        likelihood relaxation, no Occam regularisers, no MC averaging (used by diagnostics)."""
        passed = CriticPass(self.critic, real, fake, self.objective.input_gradient_points,
                            critic_at_gradient=self.critic_at_gradient)
        loss = self.objective.discriminator_loss(passed.d_real, passed.d_fake)
        extra = self.objective.penalty(passed, passed.real, passed.fake)
        return loss if extra is None else loss + extra

    def objective_generator_loss(self, real: Tensor, fake: Tensor) -> Tensor:
        """The (custom or objective's) L_G on one pass, without relaxation, penalties or MC
        averaging (used by diagnostics)."""
        return self._generator_adversarial(real, fake)

    def critic_pass(self, real: Tensor, fake: Tensor) -> CriticPass:
        """The critic on a real and a fake batch, shared by L_D and its penalties; inputs require
        grad only at the points where some penalty takes grad_x D."""
        points = set(self.objective.input_gradient_points)
        for reg in self.regularizers:
            points.update(reg.input_gradient_points)
        return CriticPass(self.critic, real, fake, points, critic_at_gradient=self.critic_at_gradient)

    def _discriminator_loss(self, real: Tensor, fake: Tensor) -> Tensor:
        passed = self.critic_pass(real, fake)
        loss = self.objective.discriminator_loss(passed.d_real, passed.d_fake)
        return self._with_discriminator_penalties(loss, passed)

    def _with_discriminator_penalties(self, loss: Tensor, passed: CriticPass) -> Tensor:
        real, fake = passed.real, passed.fake
        terms = [self.objective.penalty(passed, real, fake)]
        terms += [r.discriminator_penalty(passed, real, fake) for r in self.regularizers]
        extra = sum_terms(terms)
        return loss if extra is None else loss + extra

    def _generator_adversarial(self, real: Tensor, fake: Tensor) -> Tensor:
        if not self.has_discriminator:
            return self.objective.sample_loss(real, fake)
        d_real = self.critic(real).detach() if self._generator_needs_real() else None
        return self._generator_loss_of_logits(d_real, self.critic(fake))

    def _generator_needs_real(self) -> bool:
        loss_fn = self.custom_generator_loss
        return loss_fn.needs_real if loss_fn else self.objective.generator_needs_real

    def _generator_loss_of_logits(self, d_real: Tensor | None, d_fake: Tensor) -> Tensor:
        if self.custom_generator_loss is not None:
            return self.custom_generator_loss(d_real, d_fake)
        return self.objective.generator_loss(d_real, d_fake)

    def _with_generator_penalties(self, loss: Tensor) -> Tensor:
        extra = sum_terms([r.generator_penalty(loss, self.generator) for r in self.regularizers])
        return loss if extra is None else loss + extra

    # ------------------------------------------------------------------ MC dropout
    # Each training loss is the mean over n_mcd stochastic passes, every pass with its own dropout
    # masks in G and D and its own relaxation noise (Gal & Ghahramani 2016; Filippone & Linhard
    # 2025, "Approximate inference"). Passes are stacked along the batch (pass-major: rows
    # k*B..(k+1)*B-1 are pass k) and run as ONE forward of n_mcd * B samples when the network has
    # no batch coupling (no BatchNorm in training mode): dropout masks are per sample, so this
    # equals n_mcd separate passes. Otherwise the passes run one after the other. Losses that
    # couple a batch (RGAN's means, MMD, batch-level generator losses) are evaluated per pass
    # and averaged; penalties, being means of per-sample terms, are evaluated once on the stack.
    def fake_passes(self, fake: Tensor, z: Tensor | None = None) -> Tensor:
        """The stacked fakes of the ``n_mcd`` passes: ``fake`` is pass 1; with its latents ``z``
        the other passes are fresh draws G(z) (new generator masks, with a graph to G only if
        ``fake`` has one); without ``z`` they repeat ``fake`` (only the critic is re-drawn)."""
        n = self.n_mcd
        if n == 1:
            return fake
        if z is None:
            return _tile(fake, n)
        with torch.set_grad_enabled(torch.is_grad_enabled() and fake.requires_grad):
            more = self.generate_passes(z, n - 1)
        return torch.cat([fake, more.to(fake.dtype)])

    def generate_passes(self, z: Tensor, n: int) -> Tensor:
        """G(z) for ``n`` stochastic passes, stacked pass-major (one forward when possible)."""
        if n == 1:
            return self.generate(z)
        if self._batches_passes(self.generator):
            return self.generate(_tile(z, n))
        return torch.cat([self.generate(z) for _ in range(n)])

    def _batches_passes(self, module: nn.Module) -> bool:
        return self.batch_mc_passes and not has_batch_coupling(module)

    def _discriminator_loss_passes(self, real: Tensor, fakes: Tensor) -> Tensor:
        n = self.n_mcd
        if n > 1 and not self._batches_passes(self.discriminator):
            return self._mean_over_chunks(lambda k, f: self._discriminator_loss(real, f), fakes, n)
        return self._stacked_discriminator_loss(self.critic_pass(_tile(real, n), fakes), n)

    def _stacked_discriminator_loss(self, passed: CriticPass, n: int) -> Tensor:
        d_real, d_fake = passed.d_real.view(n, -1), passed.d_fake.view(n, -1)
        loss = sum(self.objective.discriminator_loss(d_real[k], d_fake[k]) for k in range(n)) / n
        return self._with_discriminator_penalties(loss, passed)

    def _generator_adversarial_passes(self, real: Tensor, fakes: Tensor) -> Tensor:
        n = self.n_mcd
        if n == 1:
            return self._generator_adversarial(real, fakes)
        if not self.has_discriminator or not self._batches_passes(self.discriminator):
            return self._mean_over_chunks(lambda k, f: self._generator_adversarial(real, f), fakes, n)
        d_real = self.critic(_tile(real, n)).detach().view(n, -1) if self._generator_needs_real() else None
        d_fake = self.critic(fakes).view(n, -1)
        return sum(self._generator_loss_of_logits(None if d_real is None else d_real[k], d_fake[k])
                   for k in range(n)) / n

    @staticmethod
    def _mean_over_chunks(loss_of_pass, stacked: Tensor, n: int) -> Tensor:
        return sum(loss_of_pass(k, chunk) for k, chunk in enumerate(stacked.chunk(n))) / n

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


def _tile(x: Tensor, n: int) -> Tensor:
    """n copies of a batch stacked along dim 0 (pass-major)."""
    return x if n == 1 else x.repeat(n, *([1] * (x.dim() - 1)))


def _at_least_float32(x: Tensor) -> Tensor:
    """Autocast outputs (bfloat16) back to float32; float64 models stay in float64."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
