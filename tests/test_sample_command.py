"""`occamgan sample`: PNG and npz export from a tiny trained DCGAN run, MC dropout, refusals."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from occamgan import api
from occamgan.cli import app
from occamgan.commands import sample as _registers  # noqa: F401
from occamgan.image_grid import to_uint8


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    cfg = {"data": {"name": "digits", "image_size": 16},
           "model": {"name": "dcgan", "latent_dim": 8, "ngf": 4, "ndf": 4, "dropout": 0.3},
           "objective": {"name": "rgan"},
           "train": {"steps": 4, "batch_size": 16, "device": "cpu"}, "eval": {"n_samples": 16}}
    return api.train(cfg, out=out, overwrite=True, progress=False).run_dir


def invoke(*args):
    return CliRunner().invoke(app, ["sample", *map(str, args)])


def test_png_export_matches_api_samples(run_dir, tmp_path):
    result = invoke(run_dir, "--n", 5, "--out", tmp_path / "png", "--seed", 3)
    assert result.exit_code == 0, result.output
    files = sorted((tmp_path / "png").iterdir())
    assert [f.name for f in files] == [f"{i:06d}.png" for i in range(5)]
    expected = to_uint8(api.sample(run_dir, 5, seed=3))
    for f, e in zip(files, expected):
        with Image.open(f) as img:
            assert img.mode == "L" and np.array_equal(np.array(img), e[..., 0])


def test_npz_export_holds_float_samples_and_uint8_images(run_dir, tmp_path):
    assert invoke(run_dir, "--n", 4, "--out", tmp_path / "z", "--format", "npz").exit_code == 0
    with np.load(tmp_path / "z" / "samples.npz") as d:
        assert d["samples"].shape == (4, 1, 16, 16) and d["images"].dtype == np.uint8
        assert np.array_equal(to_uint8(torch.from_numpy(d["samples"])), d["images"])


def test_mc_dropout_changes_samples_for_the_same_latents(run_dir):
    plain = api.sample(run_dir, 8, seed=1)
    assert torch.equal(plain, api.sample(run_dir, 8, seed=1))
    assert not torch.allclose(plain, api.sample(run_dir, 8, seed=1, mc_dropout=True))


def test_refuses_non_empty_output_and_bad_format(run_dir, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    result = invoke(run_dir, "--out", tmp_path / "full")
    assert result.exit_code == 2 and "not empty" in result.output
    assert (tmp_path / "full" / "keep.txt").read_text() == "x"
    result = invoke(run_dir, "--out", tmp_path / "new", "--format", "jpg")
    assert result.exit_code == 2 and "png or npz" in result.output and not (tmp_path / "new").exists()


def test_png_export_streams_in_batches_with_the_same_images(run_dir, tmp_path):
    from occamgan.sample_files import export_samples

    run = api.load_run(run_dir)
    files = export_samples(run, 7, tmp_path / "streamed", "png", seed=4, batch=3)
    assert [f.name for f in files] == [f"{i:06d}.png" for i in range(7)]
    expected = to_uint8(api.sample(run, 7, seed=4))
    for f, e in zip(files, expected):
        with Image.open(f) as img:
            assert np.array_equal(np.array(img), e[..., 0])


def test_an_npz_beyond_memory_is_refused_before_writing(run_dir, tmp_path, monkeypatch):
    from occamgan import sample_files

    monkeypatch.setattr(sample_files, "available_memory", lambda: 1000)
    result = invoke(run_dir, "--n", 64, "--out", tmp_path / "big", "--format", "npz")
    assert result.exit_code == 2 and "would not fit" in result.output and "--format png" in result.output
    assert not (tmp_path / "big").exists() or not any((tmp_path / "big").iterdir())
