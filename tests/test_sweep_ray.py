"""Sweeps on Ray (``--backend ray``): a local Ray cluster trains a 4-run sweep, with the same
results.csv and table.md as the local backend; a rerun skips the finished runs. Skipped when Ray
is not installed (``pip install "occamgan[ray]"``)."""
import csv

import pytest

from occamgan.errors import ConfigError
from occamgan.sweep import run_sweep

TIMING = {"seconds", "steps_per_second"}


def read_csv(path):
    with open(path, newline="") as fh:
        return [{k: v for k, v in r.items() if k not in TIMING} for r in csv.DictReader(fh)]


@pytest.fixture
def base(tiny_overrides):
    return tiny_overrides + ["train.steps=10", "train.report=false"]


def test_a_ray_sweep_is_the_local_sweep_and_a_rerun_skips_finished_runs(tmp_path, base):
    ray = pytest.importorskip("ray")
    grid = ["model.depth=0,1", "regularizers.sigma=0,0.1"]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        first = run_sweep(None, grid, seeds=1, out=tmp_path / "ray", overrides=base, backend="ray", plots=False)
        assert first.counts == {"done": 4, "diverged": 0, "error": 0, "skipped": 0}
        again = run_sweep(None, grid, seeds=1, out=tmp_path / "ray", overrides=base, backend="ray", plots=False)
        assert again.counts == {"done": 0, "diverged": 0, "error": 0, "skipped": 4}
    finally:
        ray.shutdown()
    local = run_sweep(None, grid, seeds=1, out=tmp_path / "local", overrides=base, jobs=1, plots=False)
    assert read_csv(first.results_path) == read_csv(local.results_path)
    assert first.table_path.read_text() == local.table_path.read_text()


def test_bad_ray_resources_are_one_config_error(tmp_path, base):
    pytest.importorskip("ray")
    with pytest.raises(ConfigError, match="--cpus-per-run"):
        run_sweep(None, ["model.depth=0,1"], seeds=1, out=tmp_path / "s", overrides=base, backend="ray",
                  cpus_per_run=0)
    with pytest.raises(ConfigError, match="--backend"):
        run_sweep(None, ["model.depth=0,1"], seeds=1, out=tmp_path / "s", overrides=base, backend="slurm")
