"""An image run writes sample grids of fixed latents at every checkpoint."""
import occamgan

CFG = {
    "data": {"name": "digits", "image_size": 16},
    "model": {"name": "dcgan", "latent_dim": 8, "ngf": 4, "ndf": 4},
    "train": {"steps": 4, "batch_size": 16, "checkpoint_every": 2},
    "eval": {"n_samples": 16},
}


def test_image_run_writes_grids_and_resumes(tmp_path):
    result = occamgan.train(CFG, out=tmp_path / "run", progress=False)
    grids = sorted(p.name for p in (result.run_dir / "samples").iterdir())
    assert grids == ["step_0000002.png", "step_0000004.png"]
    assert (result.run_dir / "samples.png").is_file()
    x = occamgan.load_run(result.run_dir).sample(5)
    assert x.shape == (5, 1, 16, 16) and x.min() >= -1 and x.max() <= 1
