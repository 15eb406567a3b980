"""The plan of a sweep: grid axes, one planned run per (grid point, seed), each config validated
before anything runs, and the sweep directory that holds the plan."""
from __future__ import annotations

import copy
import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import yaml

from ..atomic import atomic_write_text
from ..config import Config, build_config
from ..errors import ConfigError, RunDirError
from .layout import LOCKS_DIR, PLAN_NAME, RUNS_DIR, read_json


@dataclass(frozen=True)
class GridAxis:
    """One ``--grid KEY=V1,V2,...``: a dotted config key and its values (YAML scalars/lists)."""

    key: str
    values: tuple[Any, ...]


def parse_grid(item: str) -> GridAxis:
    """``"model.latent_dim=1,2,3,5"`` -> GridAxis("model.latent_dim", (1, 2, 3, 5)).

    The values are read as one YAML flow sequence, so lists work too:
    ``train.betas=[0.5,0.9],[0.0,0.99]``."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key or not raw.strip():
        raise ConfigError(f"--grid {item!r}: expected KEY=V1,V2,..., e.g. model.latent_dim=1,2,3,5")
    if key == "seed":
        raise ConfigError("--grid seed=...: seeds are set with --seeds N (base seed + 0..N-1)")
    try:
        values = yaml.safe_load(f"[{raw}]")
    except yaml.YAMLError:
        raise ConfigError(f"--grid {item!r}: values must be comma-separated YAML scalars or lists") from None
    if any(v is None for v in values):
        raise ConfigError(f"--grid {item!r}: empty value in the list")
    if len({json.dumps(v) for v in values}) != len(values):
        raise ConfigError(f"--grid {item!r}: repeated value")
    return GridAxis(key, tuple(values))


def as_axes(grid: Sequence[str | GridAxis] | dict[str, Sequence[Any]]) -> list[GridAxis]:
    if isinstance(grid, dict):
        axes = [GridAxis(k, tuple(v)) for k, v in grid.items()]
    else:
        axes = [g if isinstance(g, GridAxis) else parse_grid(g) for g in grid]
    keys = [a.key for a in axes]
    for key in keys:
        if keys.count(key) > 1:
            raise ConfigError(f"--grid {key}: given twice; list all its values in one --grid")
    for a in axes:
        if not a.values:
            raise ConfigError(f"--grid {a.key}: no values")
    return axes


def override(key: str, value: Any) -> str:
    """A ``--set`` override whose value reads back exactly (JSON is valid YAML)."""
    return f"{key}={json.dumps(value)}"


@dataclass(frozen=True)
class PlannedRun:
    name: str
    point: dict[str, Any]
    seed: int
    #: overrides of the base config that make this run (grid values, then the seed)
    overrides: list[str]


def _slug(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", text).strip("_") or "_"


def plan_runs(base: Config, axes: list[GridAxis], seeds: int) -> list[PlannedRun]:
    """Every (grid point, seed), each config validated now (a bad key or value is a
    :class:`ConfigError` before anything runs). Runs are ordered seed-major, so the first
    seeds of every grid point finish first."""
    if seeds < 1:
        raise ConfigError(f"--seeds must be >= 1 (got {seeds})")
    tree = base.to_dict()
    points = [dict(zip([a.key for a in axes], combo)) for combo in itertools.product(*[a.values for a in axes])]
    runs, names = [], set()
    for i in range(seeds):
        seed = base.seed + i
        for point in points:
            overrides = [override(k, v) for k, v in point.items()] + [f"seed={seed}"]
            build_config(copy.deepcopy(tree), overrides)
            name = "__".join([f"{k}={_slug(v)}" for k, v in point.items()] + [f"seed={seed}"])
            if name in names:  # two values with the same slug
                name = f"{name}__{len(runs)}"
            names.add(name)
            runs.append(PlannedRun(name, point, seed, overrides))
    return runs


def plan_document(base: Config, axes: list[GridAxis], runs: list[PlannedRun]) -> dict[str, Any]:
    return {
        "base": base.to_dict(),
        "grid": [{"key": a.key, "values": list(a.values)} for a in axes],
        "seeds": sorted({r.seed for r in runs}),
        "runs": [{"name": r.name, "point": r.point, "seed": r.seed, "overrides": r.overrides} for r in runs],
    }


def _with_current_defaults(saved: dict[str, Any]) -> dict[str, Any]:
    """The saved plan with its base config passed through today's schema, so that a key added to
    the schema since (at its default value, which keeps old runs' meaning) does not orphan a sweep."""
    try:
        saved["base"] = build_config(copy.deepcopy(saved["base"])).to_dict()
    except (ConfigError, KeyError, TypeError):
        pass  # a base the schema no longer accepts is a different sweep: the comparison says so
    return saved


def prepare_out(out: Path, plan: dict[str, Any]) -> None:
    """Create OUT with its plan, or check that an existing OUT holds this very sweep."""
    plan_path = out / PLAN_NAME
    if plan_path.is_file():
        saved = _with_current_defaults(read_json(plan_path))
        if saved != json.loads(json.dumps(plan)):
            raise RunDirError(
                f"{str(out)!r} holds a different sweep (base config, grid or seeds differ); "
                f"rerun the original command to resume it, or choose another --out"
            )
        return
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RunDirError(f"{str(out)!r} exists and is not a sweep directory (no {PLAN_NAME}); choose another --out")
    (out / RUNS_DIR).mkdir(parents=True, exist_ok=True)
    (out / LOCKS_DIR).mkdir(exist_ok=True)
    atomic_write_text(plan_path, json.dumps(plan, indent=1))
