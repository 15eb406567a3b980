"""evaluate_metrics: names, values, protocol record, reference cache, sources (offline, digits)."""
import pytest
import torch

from occamgan.config import build_config
from occamgan.data.base import build_data
from occamgan.errors import ConfigError
from occamgan.metrics.base import METRICS
from occamgan.metrics.domain_classifier import save_classifier, train_classifier
from occamgan.metrics.features import load_feature_extractor
from occamgan.metrics.fid import fid_from_features
from occamgan.evaluation import evaluate_metrics
from occamgan.metrics.base import metric_values
from occamgan.metrics.image import parse_metric
from occamgan.metrics.reference import reference_indices

NET = "lenet_digits"
ALL = [f"fid_{NET}", f"kid_{NET}", f"pr_{NET}", f"dc_{NET}"]


def digits(split: str):
    return build_data(build_config({"data": {"name": "digits", "split": split}}))


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    train, test = digits("train"), digits("test")
    trained = train_classifier(train.data, train.labels, test.data, test.labels, epochs=3, batch_size=32)
    root = tmp_path_factory.mktemp("cache")
    save_classifier(trained, root / "occamgan" / "features" / f"{NET}.pt", NET, "digits")
    return root


@pytest.fixture
def env(cache, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    return cache


def test_values_and_protocol(env):
    train, test = digits("train"), digits("test")
    out = evaluate_metrics(ALL, test.data, data=train, n_ref=1000)
    values = metric_values(out)
    assert set(values) == {f"{v}_{NET}" for v in ("fid", "kid", "kid_std", "precision", "recall", "density", "coverage")}
    p = out[f"protocol_{NET}"]
    assert p["generator"] == "images" and p["n_fake"] == 297 and p["n_real"] == 1000
    assert p["reference"]["data"] == "digits" and p["reference"]["split"] == "train"
    assert p["reference_selection"] == "seed-0 subset"
    assert p["features"]["network"] == NET and p["kid"]["subset_size"] == 297 and p["pr_k"] == 3 and p["dc_k"] == 5
    # the FID is that of the features of exactly these images
    extractor = load_feature_extractor(NET)
    ref = train.data[reference_indices(len(train), 1000)]
    assert values[f"fid_{NET}"] == pytest.approx(fid_from_features(extractor(test.data), extractor(ref)), rel=1e-9)


def test_real_digits_beat_noise(env):
    train, test = digits("train"), digits("test")
    noise = torch.rand(297, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    real = metric_values(evaluate_metrics(ALL, test.data, data=train))
    fake = metric_values(evaluate_metrics(ALL, noise, data=train))
    assert real[f"fid_{NET}"] * 5 < fake[f"fid_{NET}"]
    assert real[f"kid_{NET}"] < fake[f"kid_{NET}"]
    assert real[f"precision_{NET}"] > 0.5 > fake[f"precision_{NET}"]
    assert real[f"coverage_{NET}"] > fake[f"coverage_{NET}"]


def test_reference_is_cached_under_its_protocol(env):
    train, test = digits("train"), digits("test")
    first = evaluate_metrics([f"fid_{NET}"], test.data, data=train, n_ref=500)
    files = sorted((env / "occamgan" / "reference").glob("*.npz"))
    assert any("digits-train-lenet_digits-n500-" in f.name for f in files)
    again = evaluate_metrics([f"fid_{NET}"], test.data, data=train, n_ref=500)
    assert again == first
    other = evaluate_metrics([f"fid_{NET}"], test.data, data=train, n_ref=400)
    assert other[f"fid_{NET}"] != first[f"fid_{NET}"]
    assert len(list((env / "occamgan" / "reference").glob("*.npz"))) == len(files) + 1


def test_sampler_source_is_seeded(env):
    train = digits("train")

    def sampler(n: int, seed: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed)
        return train.data[torch.randint(len(train), (n,), generator=gen)]

    a = evaluate_metrics([f"fid_{NET}"], sampler, data=train, n=300, seed=1)
    b = evaluate_metrics([f"fid_{NET}"], sampler, data=train, n=300, seed=1)
    c = evaluate_metrics([f"fid_{NET}"], sampler, data=train, n=300, seed=2)
    assert a == b and a[f"fid_{NET}"] != c[f"fid_{NET}"]
    assert a[f"protocol_{NET}"]["generator"] == "sampler" and a[f"protocol_{NET}"]["n_fake"] == 300


def test_names_carry_the_network():
    assert parse_metric("fid").network == "inception" and parse_metric("fid").name == "fid"
    assert parse_metric("kid_lenet").network == "lenet" and parse_metric("kid_lenet").value_names == ["kid_lenet", "kid_std_lenet"]
    assert parse_metric("fid_inception").name == "fid"
    for bad in ("fidd", "is", "fid_"):
        with pytest.raises(ConfigError, match="unknown image metric"):
            parse_metric(bad)
    for name in ("fid", "kid", "pr", "dc", "fid_lenet", "kid_lenet", "pr_lenet", "dc_lenet"):
        assert name in METRICS
    assert build_config({"eval": {"metrics": ["fid_lenet", "kid"]}}).eval.metrics == ["fid_lenet", "kid"]
    with pytest.raises(ConfigError, match="did you mean 'fid_lenet'"):
        build_config({"eval": {"metrics": ["fid_lenett"]}})


def test_toy_data_and_missing_reference_are_errors(env):
    toy = build_data(build_config({}))
    with pytest.raises(ConfigError, match="image data set"):
        evaluate_metrics([f"fid_{NET}"], torch.zeros(10, 1, 8, 8), data=toy)
    with pytest.raises(ConfigError, match="reference images: pass data="):
        evaluate_metrics([f"fid_{NET}"], torch.zeros(10, 1, 8, 8))


def test_too_few_images_for_knn_balls_is_an_error(env):
    train = digits("train")
    with pytest.raises(ConfigError, match="at least 6"):
        evaluate_metrics([f"dc_{NET}"], train.data[:5], data=train)
