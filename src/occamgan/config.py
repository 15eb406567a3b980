"""The typed configuration schema, composed from the plug-ins' own parameter models.

Sources, applied in order: the schema defaults, a YAML file (``--config FILE``), then dotted
overrides (``--set train.steps=200``; values are parsed as YAML scalars/lists). Every section
forbids unknown keys, so a typo is an error that names the key, never a silently ignored setting.

The sections ``model``, ``objective`` (with its ``generator_loss``) and ``train`` are discriminated
unions on the chosen plug-in's name (``model.name``, ``objective.name``,
``objective.generator_loss.name``, ``train.update``): each member is the section's common keys plus
the parameter model that the plug-in registered (:mod:`occamgan.params`). So
``objective: {name: wgan_gp, gp_weight: 10}`` validates gp_weight, and ``gp_weight`` under
``wgan_div`` is an error that names the key and the objective. ``regularizers`` and ``eval`` are
the union of every regulariser's and metric's parameters (each regulariser is switched by its
own knob; metrics are chosen in ``eval.metrics``), and ``data`` holds the common data keys
(:class:`~occamgan.data.base.DataConfig`) plus any knobs a data set registers. The schema is rebuilt when a plug-in registers
later (a user's own objective in a script is part of the schema as soon as it is registered).
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import Field, ValidationError, create_model, model_validator

from .data.base import DataConfig
from .errors import ConfigError
from .params import MAX_SEED, NoParams, Params


class Section(Params):
    """A config section: unknown keys are errors and floats must be finite, as in a plug-in's
    parameters (:class:`occamgan.params.Params`)."""


class ModelBase(Section):
    """Keys of every model family; each family adds its own (models/*.py)."""

    name: str
    latent_dim: int = Field(2, ge=1)
    #: MC-dropout rate p in G and D (Dropout in MLPs, Dropout2d in conv nets)
    dropout: float = Field(0.0, ge=0, lt=1)


class GeneratorLossBase(Section):
    """``objective.generator_loss``: a registered generator loss, or "default" for the objective's own."""

    name: str


class ObjectiveBase(Section):
    """Keys of every objective; each objective adds its own (objectives/*.py)."""

    name: str
    generator_loss: Any = None  # the union of generator losses, set when the schema is composed


class TrainBase(Section):
    """Keys of every update rule; each rule adds its own (update_rules/*.py)."""

    #: registered update rule: alternating, simultaneous, cgd, acgd, gacgd
    update: str
    steps: int = Field(12000, ge=1)
    batch_size: int = Field(256, ge=1)
    lr_g: float = Field(1e-3, gt=0)
    lr_d: float = Field(1e-3, gt=0)
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
    #: EMA of buffers (BatchNorm statistics): "average" them like the weights, or "copy" the live
    #: generator's (the authors' EMA shadows parameters only); train/ema.py
    ema_buffers: Literal["average", "copy"] = "average"
    #: steps between checkpoints (the last step is always saved)
    checkpoint_every: int = Field(1000, ge=1)
    log_every: int = Field(50, ge=1)
    #: also write TensorBoard event files into the run directory
    tensorboard: bool = False
    #: write report.html (config, curves, samples, scores) into the run directory at its end
    report: bool = True
    #: MC-dropout passes averaged in each loss
    n_mcd: int = Field(1, ge=1)
    #: bfloat16 autocast for the forwards of G and D (on any device; fast on CUDA tensor cores,
    #: slow on CPUs without bf16 units). Kept in float32 because they are differentiated twice:
    #: the critic at gradient-penalty points, the generator step under grad_reg or the MMD sample
    #: gradient, every step of cgd/acgd/gacgd, and all evaluation (game.py, "precision")
    amp: bool = False
    #: "auto" picks CUDA when available
    device: str = "auto"
    #: data-parallel runs (torchrun, --nproc): BatchNorm over the global batch (SyncBatchNorm);
    #: off, each rank normalises its own shard and rank 0's running statistics are saved
    sync_bn: bool = True
    #: CUDA: let cuDNN pick the fastest convolution algorithms for the run's shapes (same results
    #: up to float rounding; not bit-reproducible between runs)
    cudnn_benchmark: bool = False
    #: convolutional players (DCGAN) in channels-last memory format: faster convolutions on CUDA
    #: tensor cores, the same results up to float rounding (also allowed on the CPU)
    channels_last: bool = False
    #: torch.compile the forwards of G and D (compilation.py); the run records graph breaks in
    #: summary.json "compile". Backends: "inductor" (CUDA/C++ kernels), "aot_eager" (traces,
    #: runs eagerly: a check without a compiler), any other of torch._dynamo.list_backends()
    compile: bool = False
    compile_backend: str = "inductor"
    #: inductor's modes; "reduce-overhead" uses CUDA graphs
    compile_mode: Literal["default", "reduce-overhead", "max-autotune"] = "default"


class RegularizersBase(Section):
    """Every regulariser's knobs (regularizers/*.py); a regulariser is on when its knob is."""


class EvalBase(Section):
    """Keys of every evaluation; each metric adds its own knobs (metrics/, diagnostics/, bayes/)."""

    #: samples drawn from the (EMA) generator for the final scores
    n_samples: int = Field(10_000, ge=1)
    #: steps between evaluations during training (0 = only at the end)
    every: int = Field(0, ge=0)
    #: registered metrics beyond those that apply to the data by default (toy scores for toy
    #: data), e.g. fid_lenet, kid, sharpness, evidence; `occamgan eval --help` lists them
    metrics: list[str] = Field(default_factory=list)
    #: also measure sharpness (the same as listing "sharpness" in eval.metrics)
    sharpness: bool = False
    #: evaluate the EMA generator (True) or the raw one
    use_ema: bool = True


#: section -> (the key that names its plug-in, the default plug-in, the base of its members)
UNION_SECTIONS: dict[str, tuple[str, str, type[Section]]] = {
    "model": ("name", "mlp", ModelBase),
    "objective": ("name", "minimax", ObjectiveBase),
    "train": ("update", "alternating", TrainBase),
}
DEFAULT_GENERATOR_LOSS = "default"


class Config(Section):
    """The whole configuration. Build one with :func:`build_config` / :func:`load_config` (the
    composed schema is a subclass of this class, so ``isinstance(cfg, Config)`` holds)."""

    seed: int = Field(0, ge=0, le=MAX_SEED)
    data: DataConfig = Field(default_factory=DataConfig)

    @model_validator(mode="before")
    @classmethod
    def _name_plugins(cls, data: Any) -> Any:
        return fill_plugin_names(data) if isinstance(data, dict) else data

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


# ----------------------------------------------------------------------------- composition
def _registries() -> dict[str, Any]:
    from . import plugins  # registers every built-in plug-in

    return {"model": plugins.MODELS, "objective": plugins.OBJECTIVES, "train": plugins.UPDATE_RULES,
            "generator_loss": plugins.GENERATOR_LOSSES, "regularizers": plugins.REGULARIZERS,
            "eval": plugins.METRICS, "data": plugins.DATASETS}


KINDS = {"model": "model", "objective": "objective", "train": "update rule", "generator_loss": "generator loss"}


def _member(base: type[Section], tag: str, name: str, params: type[Params], **fields: Any) -> type[Section]:
    bases = (base,) if params is NoParams else (params, base)  # MRO order puts the base's keys first
    return create_model(f"{base.__name__.removesuffix('Base')}[{name}]", __base__=bases,
                        **{tag: (Literal[name], name)}, **fields)


def _union(members: dict[str, type[Section]], tag: str, default: str) -> Any:
    union = Union[tuple(members.values())]  # type: ignore[valid-type]
    return (Annotated[union, Field(discriminator=tag)], Field(default_factory=members[default]))


def _flat(base: type[Section], registry: Any, section: str) -> type[Section]:
    """One section holding the knobs of every plug-in of ``registry``; a knob declared by two
    different parameter models is an error of the plug-ins, caught here."""
    classes: list[type[Params]] = []
    owner: dict[str, str] = {}
    for name in registry.names():
        params = registry.params(name)
        if params is NoParams or params in classes:
            continue
        for field in params.model_fields:
            if field in owner or field in base.model_fields:
                raise ValueError(f"{section}.{field} is declared twice (by {owner.get(field, 'the schema')} and {name})")
            owner[field] = name
        classes.append(params)
    return create_model(base.__name__.replace("Base", "Config"), __base__=(base, *classes))


_SCHEMA: dict[str, Any] = {}


def schema() -> type[Config]:
    """The composed Config class for the plug-ins registered now (cached until a new one registers)."""
    from .registry import Registry

    registries = _registries()
    if _SCHEMA.get("version") == Registry.version:
        return _SCHEMA["config"]
    losses = registries["generator_loss"]
    loss_members = {DEFAULT_GENERATOR_LOSS: _member(GeneratorLossBase, "name", DEFAULT_GENERATOR_LOSS, NoParams)}
    loss_members |= {n: _member(GeneratorLossBase, "name", n, losses.params(n)) for n in losses.names()}
    loss_field = _union(loss_members, "name", DEFAULT_GENERATOR_LOSS)
    fields: dict[str, Any] = {}
    members: dict[str, dict[str, type[Section]]] = {"generator_loss": loss_members}
    for section, (tag, default, base) in UNION_SECTIONS.items():
        registry = registries[section]
        extra = {"generator_loss": loss_field} if section == "objective" else {}
        members[section] = {n: _member(base, tag, n, registry.params(n), **extra) for n in registry.names()}
        fields[section] = _union(members[section], tag, default)
    for section, base in (("regularizers", RegularizersBase), ("eval", EvalBase), ("data", DataConfig)):
        flat = _flat(base, registries[section], section)
        members[section] = {"": flat}
        fields[section] = (flat, Field(default_factory=flat))
    composed = create_model("Config", __base__=Config, **fields)
    _SCHEMA.update(version=Registry.version, config=composed, members=members)
    return composed


def section_members(section: str) -> dict[str, type[Section]]:
    """name -> section model of each plug-in of a union section (``model``, ``objective``,
    ``train``, ``generator_loss``); the flat sections map "" to their one model."""
    schema()
    return _SCHEMA["members"][section]


def fill_plugin_names(tree: dict[str, Any]) -> dict[str, Any]:
    """Give every union section its default plug-in name when the tree does not name one, read a
    generator loss given as a plain name, and check every name against its registry first (an
    unknown name is one line with the allowed names and a "did you mean")."""
    from .registry import UnknownNameError

    tree = dict(tree)
    registries = _registries()
    for section, (tag, default, _) in UNION_SECTIONS.items():
        node = tree.get(section)
        if node is None:
            continue
        if not isinstance(node, dict):
            raise ConfigError(f"config key {section} must be a section (a mapping), got {node!r}")
        node = tree[section] = {tag: default, **node}
        _check_name(registries[section], f"{section}.{tag}", node[tag], UnknownNameError)
    objective = tree.get("objective")
    if isinstance(objective, dict) and "generator_loss" in objective:
        loss = objective["generator_loss"]
        loss = {"name": loss} if isinstance(loss, str) else loss
        if isinstance(loss, dict):
            loss = {"name": DEFAULT_GENERATOR_LOSS, **loss}
            if loss["name"] != DEFAULT_GENERATOR_LOSS:
                _check_name(registries["generator_loss"], "objective.generator_loss", loss["name"], UnknownNameError)
        tree["objective"] = {**objective, "generator_loss": loss}
    return tree


def _check_name(registry: Any, key: str, name: Any, unknown: type[Exception]) -> None:
    if not isinstance(name, str):
        raise ConfigError(f"config key {key}: expected a name, got {name!r}")
    try:
        registry.get(name)
    except unknown as exc:
        raise ConfigError(f"config key {key}: {exc}") from None


# ----------------------------------------------------------------------------- sources
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
        if isinstance(child, str) and part == "generator_loss":  # a loss named by its name alone
            child = node[part] = {"name": child}
        if not isinstance(child, dict):
            raise ConfigError(f"config key {'.'.join(path)}: {part!r} is not a section")
        node = child
    if path[-1] == "generator_loss" and isinstance(value, str) and isinstance(node.get("generator_loss"), dict):
        value = {**node["generator_loss"], "name": value}  # keep the loss's knobs set earlier
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


def _explain(exc: ValidationError, tree: dict[str, Any]) -> str:
    err = exc.errors()[0]
    loc = [str(p) for p in err["loc"] if not isinstance(p, int)]
    plugin = None
    # a union member's location carries its plug-in name: (section, name, key) -> section.key
    if len(loc) >= 2 and loc[0] in UNION_SECTIONS:
        plugin = (KINDS[loc[0]], loc[0], loc.pop(1))
        if len(loc) >= 3 and loc[1] == "generator_loss":
            plugin = (KINDS["generator_loss"], "generator_loss", loc.pop(2))
    key = ".".join(loc) or "config"
    if err["type"] == "extra_forbidden":
        users = [n for n, m in section_members(plugin[1]).items() if loc[-1] in m.model_fields] if plugin else []
        if not users:
            known = _section_keys(loc[0]) if len(loc) == 2 else []
            close = difflib.get_close_matches(loc[-1], known, n=1)
            return f"unknown config key {key!r}" + (f" (did you mean {loc[0]}.{close[0]}?)" if close else "")
        kind, section, name = plugin
        registry = _registries()[section]
        own = list(registry.params(name).model_fields) if name in registry else []
        where = f"; it applies to {kind}s: {', '.join(users)}"
        return (f"config key {key} does not apply to {kind} {name!r} (its own keys: {', '.join(own) or 'none'})"
                f"{where}")
    got = err.get("input")
    shown = f" (got {got!r})" if not isinstance(got, dict) else ""
    return f"config key {key}: {err['msg']}{shown}"


def _section_keys(section: str) -> list[str]:
    """Every key any plug-in accepts in ``section`` (for "did you mean")."""
    try:
        members = section_members(section)
    except KeyError:
        return []
    return sorted({k for m in members.values() for k in m.model_fields})


def build_config(tree: dict[str, Any] | None = None, overrides: list[str] | None = None) -> Config:
    """Validate a nested dict plus dotted overrides into a :class:`Config` (names are checked)."""
    tree = dict(tree or {})
    for item in overrides or []:
        path, value = _parse_override(item)
        _set_dotted(tree, path, value)
    try:
        cfg = schema().model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, tree)) from None
    check_names(cfg)
    return cfg


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Defaults <- YAML file <- ``--set`` overrides, validated; raises :class:`ConfigError`."""
    return build_config(_read_yaml(path) if path else {}, overrides)


def read_config_tree(path: str | Path) -> dict[str, Any]:
    """The mapping of a YAML config file, unvalidated (one-line errors for unreadable files)."""
    return _read_yaml(path)


def config_section(section: str, **values: Any) -> Section:
    """One validated section with its defaults, e.g. ``config_section("objective", name="wgan_gp",
    gp_weight=5)``: what a plug-in's factory receives (for building pieces by hand and in tests)."""
    return getattr(build_config({section: values}), section)


def check_names(cfg: Config) -> None:
    """Check the names that are not union tags: the data set and the metrics."""
    from . import plugins
    from .registry import UnknownNameError

    _check_name(plugins.DATASETS, "data.name", cfg.data.name, UnknownNameError)
    for name in cfg.eval.metrics:
        try:
            plugins.METRICS.get(name)
        except UnknownNameError as exc:
            raise ConfigError(f"config key eval.metrics: {exc}") from None


def prune_to_schema(tree: dict[str, Any]) -> dict[str, Any]:
    """A config written by an older occamgan (a run directory's config.yaml), reduced to what
    today's schema reads: keys the chosen plug-in does not have are dropped (the code of that
    time ignored them too), and the generator loss's target label, which sat in the objective
    section before plug-ins owned their knobs, moves to the loss that reads it. Never applied to a
    user's config, where a misapplied key is an error."""
    objective = tree.get("objective")
    legacy_label = objective.get("target_label") if isinstance(objective, dict) else None
    tree = fill_plugin_names(tree)
    for section, (tag, _, _) in UNION_SECTIONS.items():
        node = tree.get(section)
        model = section_members(section).get(node.get(tag)) if isinstance(node, dict) else None
        if model is not None:
            tree[section] = {k: v for k, v in node.items() if k in model.model_fields}
    loss = tree.get("objective", {}).get("generator_loss") if isinstance(tree.get("objective"), dict) else None
    if isinstance(loss, dict):
        model = section_members("generator_loss").get(loss.get("name"))
        if model is not None:
            if legacy_label is not None and "target_label" in model.model_fields:
                loss = {"target_label": legacy_label, **loss}
            tree["objective"]["generator_loss"] = {k: v for k, v in loss.items() if k in model.model_fields}
    for section in ("regularizers", "eval", "data"):
        node = tree.get(section)
        if isinstance(node, dict):
            fields = section_members(section)[""].model_fields
            tree[section] = {k: v for k, v in node.items() if k in fields}
    return tree
