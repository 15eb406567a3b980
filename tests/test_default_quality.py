"""The main job must be good, not just run: the default experiment (ring8) covers all 8 modes
with at least 80% high-quality samples for every seed in 0-4. About 5 CPU-minutes, so it is
kept out of the default run: `python -m pytest -m slow tests/test_default_quality.py`."""
import pytest

import occamgan


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(5))
def test_default_run_covers_every_mode_with_high_quality(tmp_path, seed):
    metrics = occamgan.train(overrides=[f"seed={seed}"], out=tmp_path / "run", progress=False).metrics
    assert metrics["modes_covered"] == 8
    assert 0.8 <= metrics["hq_fraction"] <= 1.0
