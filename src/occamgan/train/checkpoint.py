"""Full-state checkpoints, written atomically and loaded without unpickling arbitrary objects.

A checkpoint holds G, D, the generator EMA, the update rule's optimiser/scheduler state, the
batch sampler, the step, every RNG state and the config, so a run killed at any moment resumes
from its last checkpoint and reproduces the uninterrupted run exactly (CPU).

Writing: temporary file in the same directory, flush + fsync, ``os.replace``, fsync of the
directory. Loading: ``torch.load(weights_only=True)`` (tensors, dicts, lists, numbers, strings).
"""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_write
from ..errors import CheckpointError

FORMAT_VERSION = 1


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    atomic_write(path, lambda fh: torch.save({"format": FORMAT_VERSION, **state}, fh))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    # torch.load of a file that is not a checkpoint raises anything from a zip error to a KeyError
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError, KeyError, IndexError, TypeError,
            AttributeError, zipfile.BadZipFile) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"checkpoint {str(path)!r} cannot be read: {first}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {str(path)!r} is not an occamgan checkpoint (format {FORMAT_VERSION})")
    return state


def game_signature(cfg: Any) -> dict[str, Any]:
    """What must match for a checkpoint to belong to this game (shapes, objective, rule)."""
    c = cfg.to_dict()
    return {
        "data": c["data"]["name"],
        "model": c["model"],
        "objective": {"name": c["objective"]["name"], "generator_loss": c["objective"]["generator_loss"]["name"]},
        "update": c["train"]["update"],
    }


def check_signature(saved: dict[str, Any], current: dict[str, Any], path: str | Path) -> None:
    """Raise unless the checkpoint's game signature equals the current one, on the keys the
    current game has. A checkpoint written before a config key existed has no value for it; the
    key's schema default, which is the behaviour that run was trained with, stands in for it.
    Keys the current plug-in does not have (written by a version whose sections held every
    plug-in's knobs) are not compared."""
    from ..config import build_config

    model_name = current["model"].get("name") if isinstance(current.get("model"), dict) else None
    defaults = game_signature(build_config({"model": {"name": model_name}} if model_name else {}))
    for key in current:
        was = saved.get(key)
        if isinstance(current[key], dict):
            was = {k: (was or {}).get(k, defaults[key].get(k)) for k in current[key]}
        if was != current[key]:
            raise CheckpointError(
                f"checkpoint {str(path)!r} belongs to a different game: {key} is "
                f"{was!r} there, {current[key]!r} here"
            )


def restore_players(state: dict[str, Any], game: Any, ema: Any, path: Path) -> None:
    """Load G, D and the EMA from a checkpoint's state; a mismatch is one CheckpointError."""
    try:
        game.generator.load_state_dict(state["generator"])
        if game.discriminator is not None:
            game.discriminator.load_state_dict(state["discriminator"])
        ema.load_state_dict(state["ema"])
    except (RuntimeError, KeyError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"checkpoint {str(path)!r} does not fit this game: {first}") from None
