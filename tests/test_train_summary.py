"""The score table `occamgan train` prints, and the image-metric functions of the public API."""
from __future__ import annotations

from pathlib import Path

import occamgan
from occamgan.commands.train import print_summary
from occamgan import evaluation


def test_summary_table_lists_scores_but_not_their_protocols(capsys):
    summary = {
        "step": 200, "generator": "ema", "eval_samples": 500, "steps_per_second": 12.5, "plot": "samples.png",
        "metrics": {
            "fid_lenet": 12.345678,
            "modes_covered": 8,
            "protocol_lenet": {"n_fake": 500, "generator": "ema"},
            "sharpness": {"top": 3.0},  # any dict-valued entry is a record, not a score
        },
    }
    print_summary(summary, Path("runs/x"))
    out = capsys.readouterr().out
    assert "fid_lenet" in out and "12.35" in out
    assert "modes_covered" in out and " 8 " in out
    assert "protocol_lenet" not in out and "n_fake" not in out
    assert "sharpness" not in out
    assert "12.5 steps/s" in out


def test_image_metric_functions_are_public():
    assert occamgan.evaluate_metrics is evaluation.evaluate_metrics
    assert occamgan.evaluate_run is evaluation.evaluate_run
    assert {"evaluate_metrics", "evaluate_run"} <= set(occamgan.__all__)


def test_a_run_without_scores_says_how_to_get_them(capsys):
    summary = {"step": 10, "generator": "ema", "eval_samples": 64, "steps_per_second": 3.0, "plot": "samples.png",
               "metrics": {}}
    print_summary(summary, Path("runs/img"))
    out = capsys.readouterr().out
    assert "no scores" in out and "eval.metrics" in out and "occamgan eval runs/img" in out
