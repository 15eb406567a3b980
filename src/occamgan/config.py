"""The typed configuration schema: every default of occamgan lives here.

Sources, applied in order: the schema defaults, a YAML file (``--config FILE``), then dotted
overrides (``--set train.steps=200``; values are parsed as YAML scalars/lists). Every section
forbids unknown keys, so a typo is an error that names the key, never a silently ignored setting.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import ConfigError

Pos = Field(gt=0)


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(Section):
    #: registered data set: toy sets (gaussian, ring8, grid25, swissroll) or image sets
    name: str = "ring8"
    #: size of the fixed toy training set (the paper's gaussian set is always 200 points)
    n_samples: int = Field(10_000, ge=1)
    #: standard deviation of each mixture component (ring8, grid25) or noise level (swissroll)
    std: float = Field(0.05, gt=0)
    #: radius of ring8 / half-width of grid25
    radius: float = Field(2.0, gt=0)
    #: seed of the data set itself (fixed across training seeds, as in the paper)
    seed: int = 0
    #: image data: directory or file; None -> $OCCAMGAN_DATA, then the cache directory
    root: str | None = None
    image_size: int | None = Field(None, ge=4)
    channels: int | None = Field(None, ge=1, le=4)
    split: Literal["train", "test"] = "train"
    #: worker processes decoding image files (folders too big for memory stream through them)
    num_workers: int = Field(0, ge=0)
    #: Pillow filter for resizing images (bilinear = torchvision's Resize default on PIL images)
    resize_filter: Literal["bilinear", "bicubic", "lanczos", "box", "nearest"] = "bilinear"
    #: image folders larger than this (as float32 tensors) are streamed from disk, not held in memory
    max_memory_mb: int = Field(2048, ge=0)
    #: fetch missing files of public sets (mnist, fashion_mnist, cifar10) from their canonical source
    download: bool = True


class ModelConfig(Section):
    #: registered model family: "mlp" (toy) or "dcgan" (images)
    name: str = "mlp"
    latent_dim: int = Field(2, ge=1)
    #: hidden layers of the MLPs; 0 makes a network a single linear map
    depth: int = Field(2, ge=0)
    #: hidden width of the generator MLP
    width: int = Field(128, ge=1)
    #: critic depth/width; None -> same as the generator
    d_depth: int | None = Field(None, ge=0)
    d_width: int | None = Field(None, ge=1)
    activation: Literal["leaky_relu", "relu", "tanh", "elu", "gelu", "silu"] = "leaky_relu"
    #: MC-dropout rate p in G and D (Dropout in MLPs, Dropout2d in conv nets)
    dropout: float = Field(0.0, ge=0, lt=1)
    #: DCGAN widths and options
    ngf: int = Field(64, ge=1)
    ndf: int = Field(64, ge=1)
    spectral_norm: bool = False
    #: normalisation in the DCGAN critic's hidden blocks 2..L: "batch" (the paper's code),
    #: "layer" (GroupNorm with one group: per-sample statistics over C x H x W) or "none" (the
    #: choice for WGAN-div: a normalised critic is steep at low-contrast fakes; models/dcgan.py)
    d_norm: Literal["batch", "layer", "none"] = "batch"


class ObjectiveConfig(Section):
    #: registered objective (discriminator loss and its default generator loss). The default,
    #: the saturating minimax GAN (GAN divergence: f'' tail exponent 2 at infinity), covered every
    #: ring8 mode on seeds 0-4 where the mode-seeking NS loss (exponent 3) starved some modes.
    name: str = "minimax"
    #: registered generator loss, or "default" for the objective's own
    generator_loss: str = "default"
    #: WGAN-GP weight lambda
    gp_weight: float = Field(10.0, ge=0)
    #: WGAN weight clipping bound c; null: no clipping (the bare WGAN loss, e.g. for ACGD)
    clip: float | None = Field(0.01, gt=0)
    #: WGAN-div penalty (k/2) E ||grad D||^p
    div_k: float = Field(2.0, ge=0)
    div_p: float = Field(6.0, gt=0)
    #: MMD RBF precisions lambda_l in K(a, b) = sum_l exp(-lambda_l ||a - b||^2)
    mmd_bandwidths: list[float] = Field(
        default_factory=lambda: [1.0, 0.5, 0.1, 0.02, 0.01, 0.002, 0.001], min_length=1
    )
    #: train the MMD objective on the unbiased U-statistic (the paper's code: biased V-statistic,
    #: whose 1/m bias shrinks the generated variance; objectives/mmd.py)
    mmd_unbiased: bool = False
    #: target label y^ of the label-referenced generator-loss classes
    target_label: float = 1.0

    @field_validator("mmd_bandwidths")
    @classmethod
    def _positive(cls, v: list[float]) -> list[float]:
        if any(b <= 0 for b in v):
            raise ValueError("every bandwidth must be > 0")
        return v


class RegularizersConfig(Section):
    #: likelihood relaxation: fakes become G(z) + sigma * eps in both losses
    sigma: float = Field(0.0, ge=0)
    #: gradient regularisation lambda * sum ||dL_G / dpsi||^2 (double backward)
    grad_reg: float = Field(0.0, ge=0)
    #: R1 / R2 penalties gamma/2 E ||grad_x D||^2 at real / fake points
    r1: float = Field(0.0, ge=0)
    r2: float = Field(0.0, ge=0)


class TrainConfig(Section):
    #: registered update rule: alternating, simultaneous, cgd, acgd, gacgd
    update: str = "alternating"
    steps: int = Field(12000, ge=1)
    batch_size: int = Field(256, ge=1)
    n_critic: int = Field(1, ge=1)
    lr_g: float = Field(1e-3, gt=0)
    lr_d: float = Field(1e-3, gt=0)
    betas: tuple[float, float] = (0.5, 0.999)
    adam_eps: float = Field(1e-8, gt=0)
    #: linear LR warm-up from warmup_start x lr over the first warmup_steps generator steps
    warmup_steps: int = Field(0, ge=0)
    warmup_start: float = Field(0.01, gt=0, le=1)
    #: after the warm-up, decay the lr factor to lr_decay_end at train.steps (none, linear, cosine).
    #: Cosine lifted the default ring8 run's high-quality fraction from 0.74-0.79 to 0.83-0.87
    #: (seeds 0-4). The schedule follows the current train.steps, also on a resume that extends it.
    lr_decay: Literal["none", "linear", "cosine"] = "cosine"
    lr_decay_end: float = Field(0.0, ge=0, le=1)
    #: EMA of the generator weights, used for sampling and evaluation
    ema_decay: float = Field(0.999, ge=0, lt=1)
    ema_start: int = Field(0, ge=0)
    #: steps between checkpoints (the last step is always saved)
    checkpoint_every: int = Field(1000, ge=1)
    log_every: int = Field(50, ge=1)
    #: also write TensorBoard event files into the run directory
    tensorboard: bool = False
    #: SAM / ASAM neighbourhood radius (0 = off), adaptive flag and which players use it
    sam_rho: float = Field(0.0, ge=0)
    sam_adaptive: bool = True
    sam_players: Literal["both", "g", "d"] = "both"
    #: MC-dropout passes averaged in each loss
    n_mcd: int = Field(1, ge=1)
    #: competitive rules (cgd, acgd, gacgd): the CG/GMRES solve stops when
    #: ||r||^2 <= max(cg_tol ||b||^2, cg_atol) (squared, as in the reference ACGD code) or after
    #: cg_max_iter iterations; GMRES restarts every gmres_restart steps
    cg_tol: float = Field(1e-10, gt=0)
    cg_atol: float = Field(1e-20, ge=0)
    cg_max_iter: int = Field(200, ge=1)
    gmres_restart: int = Field(10, ge=1)
    #: whose linear system is solved (the other's step costs one more product): alternate, g, d
    cgd_solve: Literal["alternate", "g", "d"] = "alternate"
    #: start each solve from the player's previous step (off: on toy GANs it saved no
    #: iterations and cost two products per step; benchmarks/bench_competitive.py)
    cgd_warm_start: bool = False
    acgd_beta: float = Field(0.99, gt=0, lt=1)
    acgd_eps: float = Field(1e-8, gt=0)
    #: mixed precision (autocast) on CUDA where it is safe; ignored on the CPU
    amp: bool = False
    #: "auto" picks CUDA when available
    device: str = "auto"

    @field_validator("betas")
    @classmethod
    def _betas_in_range(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not all(0 <= b < 1 for b in v):
            raise ValueError("betas must lie in [0, 1)")
        return v


class EvalConfig(Section):
    #: samples drawn from the (EMA) generator for the final toy metrics
    n_samples: int = Field(10_000, ge=1)
    #: steps between evaluations during training (0 = only at the end)
    every: int = Field(0, ge=0)
    #: extra registered metrics (image metrics such as fid_lenet); toy metrics are automatic
    metrics: list[str] = Field(default_factory=list)
    #: compute the top Hessian eigenvalue of L_G at the end of the run
    sharpness: bool = False
    sharpness_k: int = Field(1, ge=1)
    sharpness_batches: int = Field(4, ge=1)
    #: over batches: mean of per-batch top eigenvalues, or top eigenvalues of the mean Hessian
    #: (the paper's script for the Gaussian experiment)
    sharpness_reduce: Literal["eigenvalues", "hessian"] = "eigenvalues"
    #: TorchScript FID Inception file; None -> $OCCAMGAN_INCEPTION, then the cache directory
    inception_path: str | None = None
    #: evaluate the EMA generator (True) or the raw one
    use_ema: bool = True
    #: samples per set for the exact 2-Wasserstein distance and the MMD metric (O(n^2) cost)
    w2_samples: int = Field(2000, ge=2)
    #: a sample is high quality within hq_std standard deviations of a mixture mode
    hq_std: float = Field(3.0, gt=0)
    #: a mode is covered when it holds at least this fraction of its uniform share of samples
    mode_min_fraction: float = Field(0.1, gt=0, le=1)
    #: real images of the image-metric reference set (seed-0 subset); None -> as many as n_samples
    n_reference: int | None = Field(None, ge=2)
    #: images per batch through the feature network (Inception at 299 px: ~25 MB per image)
    feature_batch_size: int = Field(50, ge=1)


class Config(Section):
    seed: int = 0
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    objective: ObjectiveConfig = Field(default_factory=ObjectiveConfig)
    regularizers: RegularizersConfig = Field(default_factory=RegularizersConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def _parse_override(item: str) -> tuple[list[str], Any]:
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. train.steps=200")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def _set_dotted(tree: dict[str, Any], path: list[str], value: Any) -> None:
    node = tree
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"config key {'.'.join(path)}: {part!r} is not a section")
        node = child
    node[path[-1]] = value


def _read_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {str(p)!r} does not exist")
    try:
        tree = yaml.safe_load(p.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        where = f" (line {line + 1})" if line is not None else ""
        raise ConfigError(f"config file {str(p)!r} is not valid YAML{where}") from None
    if tree is None:
        return {}
    if not isinstance(tree, dict):
        raise ConfigError(f"config file {str(p)!r} must hold a mapping of sections")
    return tree


def _explain(exc: ValidationError) -> str:
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"] if not isinstance(p, int)) or "config"
    if err["type"] == "extra_forbidden":
        return f"unknown config key {key!r}"
    got = err.get("input")
    shown = f" (got {got!r})" if not isinstance(got, dict) else ""
    return f"config key {key}: {err['msg']}{shown}"


def build_config(tree: dict[str, Any] | None = None, overrides: list[str] | None = None) -> Config:
    """Validate a nested dict plus dotted overrides into a :class:`Config` (names are checked)."""
    tree = dict(tree or {})
    for item in overrides or []:
        path, value = _parse_override(item)
        _set_dotted(tree, path, value)
    try:
        cfg = Config.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(_explain(exc)) from None
    check_names(cfg)
    return cfg


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Defaults <- YAML file <- ``--set`` overrides, validated; raises :class:`ConfigError`."""
    return build_config(_read_yaml(path) if path else {}, overrides)


def check_names(cfg: Config) -> None:
    """Check every registered name of the config against its registry."""
    from . import plugins  # registers every built-in plug-in
    from .registry import UnknownNameError

    checks = [
        ("data.name", plugins.DATASETS, cfg.data.name),
        ("model.name", plugins.MODELS, cfg.model.name),
        ("objective.name", plugins.OBJECTIVES, cfg.objective.name),
        ("train.update", plugins.UPDATE_RULES, cfg.train.update),
    ]
    if cfg.objective.generator_loss != "default":
        checks.append(("objective.generator_loss", plugins.GENERATOR_LOSSES, cfg.objective.generator_loss))
    for key, registry, name in checks:
        try:
            registry.get(name)
        except UnknownNameError as exc:
            raise ConfigError(f"config key {key}: {exc}") from None
    for name in cfg.eval.metrics:
        try:
            plugins.METRICS.get(name)
        except UnknownNameError as exc:
            raise ConfigError(f"config key eval.metrics: {exc}") from None
