from pathlib import Path

import pytest

from occamgan.config import Config, build_config, load_config
from occamgan.errors import ConfigError


def test_defaults_live_in_schema():
    cfg = load_config()
    assert isinstance(cfg, Config)
    assert cfg.data.name == "ring8" and cfg.objective.name == "minimax" and cfg.train.update == "alternating"


def test_file_then_overrides_in_order(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("seed: 3\ntrain:\n  steps: 50\n  betas: [0.0, 0.9]\nmodel:\n  depth: 0\n")
    cfg = load_config(path, ["train.steps=200", "objective.name=wgan_gp", "train.lr_g=5e-4"])
    assert cfg.seed == 3 and cfg.model.depth == 0 and cfg.train.betas == (0.0, 0.9)
    assert cfg.train.steps == 200 and cfg.objective.name == "wgan_gp" and cfg.train.lr_g == 5e-4


def test_required_keys_exist_with_their_documented_defaults():
    cfg = load_config()
    expected = {"seed": 0, "data.name": "ring8", "model.latent_dim": 2, "model.depth": 2, "model.width": 128,
                "objective.name": "minimax", "objective.generator_loss.name": "default", "train.update": "alternating",
                "train.steps": 12000, "train.batch_size": 256, "train.n_critic": 1, "train.lr_g": 1e-3,
                "train.lr_d": 1e-3, "train.betas": (0.5, 0.999), "train.warmup_steps": 0, "train.ema_decay": 0.999,
                "train.ema_start": 0, "train.checkpoint_every": 1000, "eval.n_samples": 10_000}
    for key, value in expected.items():
        node = cfg
        for part in key.split("."):
            node = getattr(node, part)
        assert node == value, key
    dumped = cfg.to_dict()
    assert set(dumped) == {"seed", "data", "model", "objective", "regularizers", "train", "eval"}
    assert load_config(None, [f"{k}={v!r}" if isinstance(v, str) else f"{k}={list(v) if isinstance(v, tuple) else v}"
                              for k, v in expected.items()]) == cfg


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("train.stepz=3", "unknown config key 'train.stepz'"),
        ("nonsense.x=1", "unknown config key 'nonsense'"),
        ("train.steps=many", "config key train.steps"),
        ("train.lr_g=0", "config key train.lr_g"),
        ("train.lr_d=-1", "config key train.lr_d"),
        ("train.batch_size=0", "config key train.batch_size"),
        ("model.latent_dim=0", "config key model.latent_dim"),
        ("train.n_critic=0", "config key train.n_critic"),
        ("train.steps=0", "config key train.steps"),
        ("objective.name=wgan-gp", "allowed: "),
        ("data.name=ring9", "did you mean 'ring8'"),
        ("model.name=resnet", "config key model.name"),
        ("train.update=adam", "config key train.update"),
    ],
)
def test_bad_values_name_the_key(override, fragment):
    with pytest.raises(ConfigError) as exc:
        build_config({}, [override])
    msg = str(exc.value)
    assert fragment in msg and "\n" not in msg


def test_unknown_name_lists_allowed_values():
    with pytest.raises(ConfigError) as exc:
        build_config({}, ["objective.name=foo"])
    for name in ["minimax", "ns", "lsgan", "hinge", "wgan", "wgan_gp", "wgan_div", "rgan", "mmd"]:
        assert name in str(exc.value)


def test_missing_and_unparsable_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(scalar)


def test_override_syntax_error():
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        build_config({}, ["train.steps"])


def test_round_trip_through_yaml(tmp_path):
    cfg = load_config(None, ["seed=7", "objective.name=rgan"])
    path = tmp_path / "c.yaml"
    path.write_text(cfg.to_yaml())
    assert load_config(path) == cfg


SHIPPED_CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").rglob("*.yaml"))


def test_the_repository_ships_configs():
    assert len(SHIPPED_CONFIGS) >= 10


@pytest.mark.parametrize("path", SHIPPED_CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_validates_and_names_registered_plugins(path):
    from occamgan.config import check_names

    cfg = load_config(path)
    check_names(cfg)  # raises ConfigError on an unregistered objective, model, data set, ...
