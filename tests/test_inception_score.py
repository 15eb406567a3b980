"""Inception Score (metrics/inception_score.py): values known in closed form, split handling, and the
loaders of logits networks on small synthetic networks (TorchScript files and softmax-layer state
dicts), including the refusal of the feature-only FID network and of pickled code."""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from occamgan.data.download import file_digest
from occamgan.errors import OccamError
from occamgan.metrics import inception_score as isc
from occamgan.metrics.features import FeatureExtractor, inception_preprocess
from occamgan.metrics.inception_score import (
    InceptionLogitsError,
    InceptionLogitsUnavailable,
    find_logits_network,
    inception_score,
    inception_score_of_images,
    load_logits_network,
    log_class_probabilities,
    split_scores,
)

D64 = torch.float64


def one_hot_cycle(n: int, classes: int) -> Tensor:
    return F.one_hot(torch.arange(n) % classes, classes).to(D64)


# ----------------------------------------------------------------------------- closed forms
@pytest.mark.parametrize("classes", [2, 10, 1008])
def test_uniform_predictions_give_one(classes):
    probs = torch.full((200, classes), 1.0 / classes, dtype=D64)
    assert inception_score(probs) == pytest.approx((1.0, 0.0), abs=1e-12)
    logits = torch.full((200, classes), 3.7)  # equal logits
    assert inception_score(logits) == pytest.approx((1.0, 0.0), abs=1e-12)


@pytest.mark.parametrize("classes", [2, 5, 1008])
def test_confident_class_balanced_predictions_give_the_number_of_classes(classes):
    # every split holds each class equally often (N = 10 splits x 2 rounds x classes)
    probs = one_hot_cycle(20 * classes, classes)
    mean, std = inception_score(probs, splits=10)
    assert mean == pytest.approx(classes, rel=1e-12) and std == pytest.approx(0.0, abs=1e-9)
    # confident logits (a margin of 60: the other classes get e^-60 ~ 1e-26): the same number
    logits = 60.0 * probs.float()
    assert inception_score(logits, splits=10)[0] == pytest.approx(classes, rel=1e-12)


def test_hand_computed_symmetric_case():
    # p1 = (3/4, 1/4), p2 = (1/4, 3/4): p(y) = (1/2, 1/2), KL = 3/4 log(3/2) + 1/4 log(1/2)
    # = 3/4 log 3 - log 2, so IS = 3^(3/4) / 2
    probs = torch.tensor([[0.75, 0.25], [0.25, 0.75]], dtype=D64)
    assert inception_score(probs, splits=1) == pytest.approx((3**0.75 / 2, 0.0), rel=1e-12)
    # the same from logits log(3/4), log(1/4) (any shift per row)
    logits = torch.log(probs) + torch.tensor([[2.0], [-5.0]], dtype=D64)
    assert inception_score(logits, splits=1)[0] == pytest.approx(3**0.75 / 2, rel=1e-12)


def test_hand_computed_case_with_a_zero_probability():
    # p1 = (1, 0), p2 = (1/2, 1/2): p(y) = (3/4, 1/4); KL1 = log(4/3), KL2 = 1/2 log(2/3) + 1/2 log 2
    # = 1/2 log(4/3); mean 3/4 log(4/3), IS = (4/3)^(3/4) (0 log 0 = 0)
    probs = torch.tensor([[1.0, 0.0], [0.5, 0.5]], dtype=D64)
    assert inception_score(probs, splits=1)[0] == pytest.approx((4 / 3) ** 0.75, rel=1e-12)


def test_mean_and_population_std_over_splits():
    # split 1 confident over 4 classes (IS 4), split 2 uniform (IS 1): mean 2.5, std (ddof 0) 1.5
    probs = torch.cat([one_hot_cycle(8, 4), torch.full((8, 4), 0.25, dtype=D64)])
    assert inception_score(probs, splits=2) == pytest.approx((2.5, 1.5), rel=1e-12)
    torch.testing.assert_close(split_scores(log_class_probabilities(probs), 2), torch.tensor([4.0, 1.0], dtype=D64))


def test_split_boundaries_follow_the_reference_code():
    # N = 7, splits = 3: parts [0, 2), [2, 4), [4, 7) (i * N // splits)
    probs = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.5, 0.5], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]],
                         dtype=D64)
    scores = split_scores(log_class_probabilities(probs), 3)
    # third part: p(y) = (2/3, 1/3), KL = log(3/2) (twice) and log 3: mean (2 log 1.5 + log 3) / 3
    third = math.exp((2 * math.log(1.5) + math.log(3)) / 3)
    torch.testing.assert_close(scores, torch.tensor([2.0, 1.0, third], dtype=D64), rtol=1e-12, atol=0)


def test_float32_input_is_scored_in_float64():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(300, 1008, generator=gen) * 4
    a = inception_score(logits)
    b = inception_score(logits.double())
    assert a == b and isinstance(a[0], float)
    assert 1.0 < a[0] < 1008.0


def test_invalid_inputs():
    with pytest.raises(ValueError, match="splits"):
        inception_score(one_hot_cycle(5, 2), splits=10)
    with pytest.raises(ValueError, match="shape"):
        inception_score(torch.ones(10))
    with pytest.raises(ValueError, match="not probabilities"):
        inception_score(torch.randn(20, 3), output="probs")
    with pytest.raises(ValueError, match="NaN"):
        inception_score(torch.full((20, 3), float("nan")))
    # explicit logits are never mistaken for probabilities: one-hot rows as logits are near-uniform
    near_uniform = inception_score(one_hot_cycle(20, 2), splits=1, output="logits")[0]
    assert 1.0 < near_uniform < 1.2


# ----------------------------------------------------------------------------- synthetic networks
class ChannelMeanLogits(nn.Module):
    """(B, 3, 299, 299) -> (B, C): logits of the channel means, like a tiny classifier."""

    def __init__(self, classes: int = 4):
        super().__init__()
        self.head = nn.Linear(3, classes)
        torch.manual_seed(0)
        nn.init.normal_(self.head.weight, std=3.0)

    def forward(self, x: Tensor) -> Tensor:
        assert x.shape[-2:] == (299, 299)
        return self.head(x.mean((2, 3)))


class StyleGANLikeProbs(nn.Module):
    """forward(img, return_features, use_fp16, no_output_bias) on uint8 images -> softmax probabilities."""

    def __init__(self, classes: int = 5):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(classes, 3, generator=torch.Generator().manual_seed(1)))
        self.bias = nn.Parameter(torch.linspace(-3.0, 3.0, classes))

    def forward(self, img: Tensor, return_features: bool = False, use_fp16: bool = False,
                no_output_bias: bool = False) -> Tensor:
        assert img.dtype == torch.uint8 and img.shape[1] == 3
        x = img.float().mean((2, 3)) / 25.0
        logits = F.linear(x, self.weight) if no_output_bias else F.linear(x, self.weight, self.bias)
        return F.softmax(logits, dim=1)


class PoolFeatures(nn.Module):
    def __init__(self, dim: int = 2048):
        super().__init__()
        self.proj = nn.Linear(3, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x.mean((2, 3)))


def toy_extractor(dim: int = 2048) -> FeatureExtractor:
    torch.manual_seed(2)
    return FeatureExtractor("toy_pool", PoolFeatures(dim), lambda x: x, dim, {"network": "toy_pool"})


def images(n: int = 12, size: int = 16, channels: int = 3, seed: int = 3) -> Tensor:
    """Images in [-1, 1] whose channels differ in brightness from image to image."""
    gen = torch.Generator().manual_seed(seed)
    level = torch.rand(n, channels, 1, 1, generator=gen) * 2 - 1
    return (level + 0.1 * torch.randn(n, channels, size, size, generator=gen)).clamp(-1, 1)


def save_script(module: nn.Module, path: Path) -> Path:
    with warnings.catch_warnings():  # torch.jit.script is deprecated, TorchScript files are not
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(module).save(str(path))
    return path


def test_torchscript_logits_network(tmp_path):
    module = ChannelMeanLogits(4).eval()
    path = save_script(module, tmp_path / "logits.pt")
    with pytest.raises(InceptionLogitsError, match="runs code when loaded; .* pin it"):
        load_logits_network(path)  # a program is never loaded unpinned
    net = load_logits_network(path, trusted_sha256=file_digest(path, "sha256"))
    assert net.classes == 4 and net.protocol["format"] == "torchscript"
    assert net.protocol["sha256"] == file_digest(tmp_path / "logits.pt", "sha256")
    x = images(12)
    with torch.no_grad():
        expected = inception_score(module(inception_preprocess(x)), splits=3)
    assert inception_score_of_images(x, net, batch_size=5, splits=3) == pytest.approx(expected, rel=1e-12)
    # an iterable of batches gives the same
    assert inception_score_of_images(iter(x.split(4)), net, splits=3) == pytest.approx(expected, rel=1e-12)


def test_stylegan_like_torchscript_gets_uint8_and_no_output_bias(tmp_path):
    module = StyleGANLikeProbs(5).eval()
    pin = file_digest(save_script(module, tmp_path / "sg.pt"), "sha256")
    net = load_logits_network(tmp_path / "sg.pt", trusted_sha256=pin)
    x = images(10, channels=1)  # grey: repeated over 3 channels
    q = ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).expand(-1, 3, -1, -1)
    with torch.no_grad():
        unbiased = inception_score(module(q, no_output_bias=True), splits=2)
        biased = inception_score(module(q), splits=2)
    assert inception_score_of_images(x, net, splits=2) == pytest.approx(unbiased, rel=1e-12)
    assert abs(unbiased[0] - biased[0]) > 1e-3  # the bias matters, and it is off by default
    net_b = load_logits_network(tmp_path / "sg.pt", output_bias=True, trusted_sha256=pin)
    assert inception_score_of_images(x, net_b, splits=2) == pytest.approx(biased, rel=1e-12)


def test_softmax_layer_state_dict_on_pool_features(tmp_path):
    gen = torch.Generator().manual_seed(4)
    weight, bias = torch.randn(1008, 2048, generator=gen) * 0.05, torch.randn(1008, generator=gen)
    # pytorch-fid's file layout: fc.weight / fc.bias among the rest of the network
    torch.save({"Conv2d_1a_3x3.conv.weight": torch.zeros(2), "fc.weight": weight, "fc.bias": bias}, tmp_path / "fid.pth")
    extractor = toy_extractor()
    net = load_logits_network(tmp_path / "fid.pth", features=extractor)
    assert net.classes == 1008 and net.output == "logits" and net.protocol["features"] == {"network": "toy_pool"}
    x = images(8)
    feats = extractor(x).double()
    torch.testing.assert_close(net(x), feats @ weight.double().T, rtol=1e-12, atol=1e-12)  # no bias by default
    net_b = load_logits_network(tmp_path / "fid.pth", features=extractor, output_bias=True)
    torch.testing.assert_close(net_b(x), feats @ weight.double().T + bias.double(), rtol=1e-12, atol=1e-12)
    # a bare export of the layer
    torch.save({"weight": weight[:10]}, tmp_path / "head.pt")
    assert load_logits_network(tmp_path / "head.pt", features=extractor).classes == 10
    with pytest.raises(InceptionLogitsError, match="no bias"):
        load_logits_network(tmp_path / "head.pt", features=extractor, output_bias=True)


def test_wrong_state_dicts_are_one_line_errors(tmp_path):
    torch.save({"weight": torch.zeros(10, 512)}, tmp_path / "small.pt")
    with pytest.raises(InceptionLogitsError, match="shape"):
        load_logits_network(tmp_path / "small.pt", features=toy_extractor())
    torch.save({"weight": torch.zeros(10, 2048)}, tmp_path / "ok.pt")
    with pytest.raises(InceptionLogitsError, match="2048-d pool features"):
        load_logits_network(tmp_path / "ok.pt", features=toy_extractor(128))
    (tmp_path / "junk.pt").write_bytes(b"not a network")
    with pytest.raises(InceptionLogitsError) as info:
        load_logits_network(tmp_path / "junk.pt", features=toy_extractor())
    assert "\n" not in str(info.value)
    with pytest.raises(InceptionLogitsError, match="not found"):
        load_logits_network(tmp_path / "missing.pt")


class _Payload:
    """Pickles to a call of open(marker, "w"): loading it unsafely would create the file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_pickled_code_is_never_executed(tmp_path):
    marker = tmp_path / "executed"
    torch.save({"weight": _Payload(marker)}, tmp_path / "evil.pt")
    with pytest.raises(InceptionLogitsError, match="weights_only"):
        load_logits_network(tmp_path / "evil.pt", features=toy_extractor())
    assert not marker.exists()


def test_the_feature_only_fid_network_is_refused_in_one_line(tmp_path, monkeypatch):
    # by its sha256 (the real file is not needed: the check comes before any loading) ...
    fake_fid = tmp_path / "inception-2015-12-05.pt"
    fake_fid.write_bytes(b"stand-in for the FID network")
    monkeypatch.setattr(isc, "INCEPTION_SHA256", file_digest(fake_fid, "sha256"))
    with pytest.raises(InceptionLogitsUnavailable) as info:
        load_logits_network(fake_fid)
    message = str(info.value)
    assert "feature-only" in message and "Inception Score" in message and "\n" not in message
    assert isinstance(info.value, OccamError)
    # ... and any TorchScript network with 2048 outputs (pool features, no classes)
    features_only = save_script(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2048)),
                                tmp_path / "pool.pt")
    with pytest.raises(InceptionLogitsUnavailable, match="2048"):
        load_logits_network(features_only, trusted_sha256=file_digest(features_only, "sha256"))


def test_find_logits_network(tmp_path, monkeypatch):
    monkeypatch.delenv(isc.LOGITS_ENV, raising=False)
    fid_file = tmp_path / "fid.pt"
    fid_file.write_bytes(b"x")
    monkeypatch.setattr(isc, "inception_candidates", lambda eval_cfg=None: [fid_file])
    with pytest.raises(InceptionLogitsUnavailable, match="only the feature-only FID"):
        find_logits_network()
    monkeypatch.setattr(isc, "inception_candidates", lambda eval_cfg=None: [tmp_path / "none.pt"])
    with pytest.raises(InceptionLogitsUnavailable, match="no Inception logits network"):
        find_logits_network()
    path = save_script(ChannelMeanLogits(3).eval(), tmp_path / "logits.pt")
    monkeypatch.setenv(isc.LOGITS_ENV, str(path))

    class Pinned:
        inception_logits_path = None
        inception_logits_sha256 = file_digest(path, "sha256")

    assert find_logits_network(Pinned()).classes == 3
    with pytest.raises(InceptionLogitsError, match="pin it"):
        find_logits_network()

    class EvalCfg:
        inception_logits_path = str(tmp_path / "elsewhere.pt")

    monkeypatch.delenv(isc.LOGITS_ENV)

    with pytest.raises(InceptionLogitsError, match="not found"):
        find_logits_network(EvalCfg())


def test_is_is_a_registered_metric_with_its_protocol(tmp_path):
    from occamgan.evaluation import evaluate_metrics

    module = ChannelMeanLogits(4).eval()
    path = save_script(module, tmp_path / "logits.pt")
    params = {"inception_logits_path": str(path), "inception_logits_sha256": file_digest(path, "sha256"),
              "is_splits": 3}
    x = images(12)
    out = evaluate_metrics(["is"], x, params=params)
    with torch.no_grad():
        expected = inception_score(module(inception_preprocess(x)), splits=3)
    assert (out["is"], out["is_std"]) == pytest.approx(expected, rel=1e-12)
    assert out["protocol_is"]["splits"] == 3 and out["protocol_is"]["n"] == 12
    assert out["protocol_is"]["sha256"] == params["inception_logits_sha256"]
    with pytest.raises(InceptionLogitsError, match="pin it"):
        evaluate_metrics(["is"], x, params={"inception_logits_path": str(path)})
