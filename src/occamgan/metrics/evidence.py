"""The evidence score: mean log p(x | psi) of held-out data under the relaxed model N(x | G(z),
sigma^2 I) (Filippone & Linhard 2025; docs/methods.md section 9), by AIS with HMC (Wu et al. 2017) or
prior importance sampling, with sigma given or fitted by maximum marginal likelihood on a
validation split. Higher is better; it is what ``occamgan sweep --select evidence`` ranks by."""
from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field

from ..bayes.evidence import estimate_evidence
from ..bayes.sigma_fit import fit_sigma
from ..errors import ConfigError
from ..params import Params
from .base import EvalContext, register_metric


class EvidenceParams(Params):
    #: estimator: ais (annealed importance sampling with HMC) or is (prior importance sampling)
    evidence_method: Literal["ais", "is"] = "ais"
    #: relaxation width; null: fitted by maximum marginal likelihood on the validation split
    evidence_sigma: float | None = Field(None, gt=0)
    #: held-out points (test split of image sets, a fresh draw for toy sets)
    evidence_n: int = Field(200, ge=1)
    #: AIS: chains per point, intermediate distributions, leapfrog steps per HMC transition
    evidence_chains: int = Field(8, ge=1)
    evidence_steps: int = Field(200, ge=2)
    evidence_leapfrog: int = Field(5, ge=1)
    evidence_schedule: Literal["sigmoid", "linear", "geometric"] = "sigmoid"
    evidence_target_acceptance: float = Field(0.65, gt=0, lt=1)


def _settings(p: EvidenceParams, seed: int) -> dict[str, Any]:
    return {"method": p.evidence_method, "chains": p.evidence_chains, "steps": p.evidence_steps,
            "leapfrog": p.evidence_leapfrog, "schedule": p.evidence_schedule,
            "target_acceptance": p.evidence_target_acceptance, "seed": seed}


@register_metric("evidence", params=EvidenceParams)
def evidence_score(ctx: EvalContext) -> dict[str, Any]:
    """evidence (mean held-out log p(x | psi) in nats per point), its standard error, per
    dimension, bits/dim for images, and the sigma it was measured at."""
    p = ctx.params
    if ctx.generator is None or ctx.held_out is None or ctx.latent_dim is None:
        raise ConfigError("evidence needs a trained generator and its held-out data (a run)")
    settings = _settings(p, ctx.seed)
    sigma, fitted = p.evidence_sigma, None
    if sigma is None:
        fitted = fit_sigma(ctx.generator, ctx.held_out("validation", p.evidence_n), latent_dim=ctx.latent_dim,
                           device=ctx.device, **settings)
        sigma = fitted.sigma
    result = estimate_evidence(ctx.generator, ctx.held_out("test", p.evidence_n), latent_dim=ctx.latent_dim,
                               sigma=sigma, device=ctx.device, **settings)
    values: dict[str, Any] = {"evidence": result.mean, "evidence_stderr": result.stderr,
                              "evidence_per_dim": result.mean_per_dim, "evidence_sigma": float(sigma)}
    if getattr(ctx.data, "kind", None) == "image":
        values["evidence_bpd"] = result.bits_per_dim
    values = {k: (v if math.isfinite(v) else float("nan")) for k, v in values.items()}
    values["protocol_evidence"] = {**result.protocol, "generator": ctx.label, "test": "held-out test split",
                                   "sigma": "fitted on the validation split" if fitted else "given",
                                   "sigma_curve": fitted.curve if fitted else None, **result.diagnostics}
    return values
