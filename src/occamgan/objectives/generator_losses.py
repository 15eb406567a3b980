"""Generator losses chosen independently of the discriminator loss (``objective.generator_loss``).

Jolicoeur-Martineau 2018, "GANs beyond divergence minimization" (arXiv:1809.02145): the critic
step maximises any discriminator objective; the generator step minimises a separately chosen loss
with the critic frozen. Each loss is called as ``loss(d_real, d_fake)`` on critic outputs; the Game
passes ``d_real`` (detached) only when ``loss.needs_real``.

Classic losses, usable with any objective (on raw critic outputs d):
  ns       E softplus(-d_f)                      (Goodfellow et al. 2014, Sec. 3)
  minimax  -E softplus(d_f)                      (Goodfellow et al. 2014, Eq. 1)
  lsgan    E (d_f - 1)^2                         (Mao et al. 2017, Eq. 2, c = 1)
  wgan, hinge  -E d_f                            (Arjovsky et al. 2017; Lim & Ye 2017)

Relativistic generator losses, each the generator loss of the objective of the same name in
:mod:`occamgan.objectives.relativistic` (one implementation, wrapped by
:class:`ObjectiveGeneratorLoss`): ``rsgan`` E softplus(-(d_f,i - d_r,i)) (paired), ``rgan``
(RaSGAN as in the Occam paper's code), ``ralsgan``, ``rahinge`` and ``rpgan`` (= rsgan's loss).

The four classes of Jolicoeur-Martineau 2018 (Sec. 4 and the author's code) are one family,
:class:`DistanceGeneratorLoss`, with a distance g in {L2: a^2, L1: |a|, pseudo-Huber:
sqrt(a^2 + 1) - 1} applied in a space s(d) in {raw d, sigmoid(d), log sigmoid(d)}:

  E(d)      mean_i g(s(d_r,i) - s(d_f,i))   (reduction mean of distances, reference real, paired)
  E(d)_lab  mean_i g(s(d_f,i) - s(y^))      (mean of distances, reference the label y^)
  d(E)      g(mean s(d_r) - mean s(d_f))    (distance of means, reference real)
  d(E)_lab  g(mean s(d_f) - s(y^))          (distance of means, label)

with s(y^) = y^ in raw and sigmoid space and log y^ in log space. The author's numeric ids 1-20
(docs/methods.md section 6) are registered as aliases "1".."20": id = 1 + class + 4 * distance with
classes in the order above and distances L2, L1, Huber (ids 1-12) and log L2, log L1 (13-20).
The author's critic ends in a sigmoid (trained with BCE), so her ids 1-12 act on probabilities
D = sigmoid(d) and ids 13-20 on log D = log sigmoid(d): with our logit critics the aliases 1-12
are the sigmoid-space (``prob_``) losses, e.g. id 2 = E (sigmoid(d_f) - y^)^2, and 13-20 the
log-space ones, so the whole family acts on the author's D. The same formulas on raw logits
(e.g. E (d_f - y^)^2, which is ``lsgan`` at y^ = 1) stay available under their readable names.
Readable names: ``<mean_dist|dist_mean>_<real|label>_[log_|prob_]<l2|l1|huber>`` (no prefix: logits).

Losses of the form E_q[h(d_f)] expose ``per_sample = h``, so
:func:`occamgan.divergences.implied_divergence` can say which f-divergence (if any) they follow
under the optimal GAN critic (e.g. wgan/hinge: reverse KL; lsgan: none, its implied f is not convex;
ids 2, 6 and 10 at y^ = 1: convex, since h(d) = g(sigmoid(d) - 1) decreases in d).
"""
from __future__ import annotations

import math
from typing import Any, Callable, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from ..params import Params
from .base import GENERATOR_LOSSES, GeneratorLoss, Objective
from .relativistic import RELATIVISTIC, check_paired

Fn = Callable[[Tensor], Tensor]

Reduction = Literal["mean_of_distances", "distance_of_means"]
Reference = Literal["real", "label"]
Distance = Literal["l2", "l1", "pseudo_huber"]
Space = Literal["raw", "sigmoid", "log"]


class TargetLabelParams(Params):
    """The label-referenced losses compare the critic with a target label y^ (Jolicoeur-Martineau
    2018, Sec. 4)."""

    target_label: float = 1.0


def _params_of(reference: str) -> type[Params] | None:
    return TargetLabelParams if reference == "label" else None


def _target_label(cfg: Any) -> float:
    return float(getattr(cfg, "target_label", 1.0)) if cfg is not None else 1.0


# ----------------------------------------------------------------------------- classic losses
class PerSampleLoss(GeneratorLoss):
    """L_G = mean h(d_fake) for a function h of the critic output (``per_sample = h``)."""

    def __init__(self, h: Fn, name: str):
        self.per_sample, self.name = h, name

    def __call__(self, d_real: Tensor | None, d_fake: Tensor) -> Tensor:
        return self.per_sample(d_fake).mean()

    def __repr__(self) -> str:
        return f"PerSampleLoss({self.name})"


def _per_sample(name: str, h: Fn) -> None:
    GENERATOR_LOSSES.add(name, lambda cfg=None: PerSampleLoss(h, name))


_per_sample("ns", lambda d: F.softplus(-d))
_per_sample("minimax", lambda d: -F.softplus(d))
_per_sample("lsgan", lambda d: (d - 1).pow(2))
_per_sample("wgan", lambda d: -d)
_per_sample("hinge", lambda d: -d)


class ObjectiveGeneratorLoss(GeneratorLoss):
    """The generator loss of an objective, usable with any critic loss (``objective.generator_loss``).

    Calls ``objective.generator_loss(d_real, d_fake)``; ``needs_real`` is the objective's
    ``generator_needs_real``. The relativistic generator losses are these wrappers, so their
    formulas live once, in :mod:`occamgan.objectives.relativistic`."""

    def __init__(self, objective: Objective, name: str):
        self.objective, self.name = objective, name
        self.needs_real = objective.generator_needs_real

    def __call__(self, d_real: Tensor | None, d_fake: Tensor) -> Tensor:
        return self.objective.generator_loss(d_real, d_fake)

    def __repr__(self) -> str:
        return f"ObjectiveGeneratorLoss({self.name})"


def _objective_loss(name: str, cls: type[Objective]) -> None:
    GENERATOR_LOSSES.add(name, lambda cfg=None: ObjectiveGeneratorLoss(cls(), name))


for _name, _cls in RELATIVISTIC.items():
    _objective_loss(_name, _cls)


# ----------------------------------------------------------------------------- the JM family
def pseudo_huber(a: Tensor) -> Tensor:
    """sqrt(a^2 + 1) - 1: a^2/2 near 0, |a| - 1 far away (Jolicoeur-Martineau 2018, Sec. 4)."""
    return torch.sqrt(a * a + 1) - 1


DISTANCES: dict[str, Fn] = {"l2": lambda a: a * a, "l1": torch.abs, "pseudo_huber": pseudo_huber}
SPACES: dict[str, Fn] = {"raw": lambda d: d, "sigmoid": torch.sigmoid, "log": F.logsigmoid}


class DistanceGeneratorLoss(GeneratorLoss):
    """The four classes of Jolicoeur-Martineau 2018 as one parametrised loss (module docstring).

    reduction: "mean_of_distances" (E(d)) or "distance_of_means" (d(E));
    reference: "real" (the critic's outputs on real data) or "label" (the target label y^);
    distance: "l2", "l1" or "pseudo_huber"; space: "raw" (d), "sigmoid" (D = sigmoid(d)) or
    "log" (log sigmoid(d), computed stably); paired: for E(d) with real reference, pair real i
    with fake i as the author's code does (True) or average over all real-fake pairs (False).
    """

    #: h with L_G = mean h(d_fake), for the label-referenced mean of distances; else None
    per_sample: Fn | None = None

    def __init__(self, reduction: Reduction, reference: Reference, distance: Distance,
                 space: Space = "raw", target_label: float = 1.0, paired: bool = True):
        for key, value, allowed in (("reduction", reduction, ("mean_of_distances", "distance_of_means")),
                                    ("reference", reference, ("real", "label")),
                                    ("distance", distance, tuple(DISTANCES)), ("space", space, tuple(SPACES))):
            if value not in allowed:
                raise ValueError(f"{key} must be one of {', '.join(allowed)}; got {value!r}")
        if space == "log" and reference == "label" and target_label <= 0:
            raise ValueError(f"a log-space label loss needs target_label > 0 (log y^), got {target_label}")
        self.reduction, self.reference, self.distance, self.space = reduction, reference, distance, space
        self.target_label, self.paired = float(target_label), paired
        self.needs_real = reference == "real"
        self._g, self._s = DISTANCES[distance], SPACES[space]
        if reduction == "mean_of_distances" and reference == "label":
            self.per_sample = lambda d: self._g(self._s(d) - self._label())

    def _label(self) -> float:
        return math.log(self.target_label) if self.space == "log" else self.target_label

    def __call__(self, d_real: Tensor | None, d_fake: Tensor) -> Tensor:
        fake = self._s(d_fake)
        if self.reference == "label":
            ref: Tensor | float = self._label()
        else:
            assert d_real is not None, "a real-referenced generator loss needs D(x_real)"
            ref = self._s(d_real.detach())
        if self.reduction == "distance_of_means":
            ref_mean = ref.mean() if isinstance(ref, Tensor) else ref
            return self._g(ref_mean - fake.mean())
        if isinstance(ref, Tensor) and not self.paired:
            return self._g(ref.unsqueeze(1) - fake.unsqueeze(0)).mean()
        if isinstance(ref, Tensor):
            check_paired(ref, fake)
        return self._g(ref - fake).mean()

    def __repr__(self) -> str:
        return (f"DistanceGeneratorLoss({self.reduction}, {self.reference}, {self.distance}, "
                f"space={self.space}, target_label={self.target_label}, paired={self.paired})")


#: the author's class order and (distance, space) order behind the numeric ids 1..20
JM_CLASSES: list[tuple[Reduction, Reference]] = [
    ("mean_of_distances", "real"), ("mean_of_distances", "label"),
    ("distance_of_means", "real"), ("distance_of_means", "label"),
]
JM_DISTANCES: list[tuple[Distance, Space]] = [
    ("l2", "sigmoid"), ("l1", "sigmoid"), ("pseudo_huber", "sigmoid"), ("l2", "log"), ("l1", "log"),
]
_SHORT = {"mean_of_distances": "mean_dist", "distance_of_means": "dist_mean",
          "l2": "l2", "l1": "l1", "pseudo_huber": "huber", "raw": "", "sigmoid": "prob_", "log": "log_"}


def readable_name(reduction: Reduction, reference: Reference, distance: Distance, space: Space) -> str:
    return f"{_SHORT[reduction]}_{reference}_{_SHORT[space]}{_SHORT[distance]}"


def jm_alias(loss_id: int) -> tuple[Reduction, Reference, Distance, Space]:
    """(reduction, reference, distance, space) of the author's numeric id 1..20."""
    if not 1 <= loss_id <= 20:
        raise ValueError(f"Jolicoeur-Martineau generator loss ids are 1..20, got {loss_id}")
    dist_index, class_index = divmod(loss_id - 1, 4)
    return (*JM_CLASSES[class_index], *JM_DISTANCES[dist_index])


def _family_factory(reduction: Reduction, reference: Reference, distance: Distance, space: Space):
    def factory(cfg: Any = None) -> DistanceGeneratorLoss:
        return DistanceGeneratorLoss(reduction, reference, distance, space, _target_label(cfg))

    return factory


for _reduction, _reference in JM_CLASSES:
    for _space in SPACES:
        for _distance in DISTANCES:
            GENERATOR_LOSSES.add(readable_name(_reduction, _reference, _distance, _space),
                                 _family_factory(_reduction, _reference, _distance, _space),
                                 params=_params_of(_reference))
for _id in range(1, 21):
    GENERATOR_LOSSES.add(str(_id), _family_factory(*jm_alias(_id)), params=_params_of(jm_alias(_id)[1]))
