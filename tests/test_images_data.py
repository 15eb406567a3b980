"""Image data sets: file formats, preparation (channels, resize, [-1, 1]), files/downloads,
and the streaming sampler's order and resumability. Everything runs offline on files made here."""
from __future__ import annotations

import gzip
import hashlib
import logging
import os
import pickle
import struct
import tarfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import needs_real_mnist
from occamgan.config import build_config
from occamgan.data import safe_pickle
from occamgan.data.base import DATASETS, BatchSampler, StreamingBatchSampler, build_data
from occamgan.data.download import RemoteFile, download
from occamgan.errors import DataError



def load(**data) -> "object":
    return build_data(build_config({"data": data}))


def data_cfg(**data):
    """A data section with ``skip_bad_files`` also before the schema has that key."""
    skip = data.pop("skip_bad_files", None)
    cfg = build_config({"data": data}).data
    if skip is None:
        return cfg
    if "skip_bad_files" in type(cfg).model_fields:
        return build_config({"data": {**data, "skip_bad_files": skip}}).data
    return SimpleNamespace(**cfg.model_dump(), skip_bad_files=skip)


def write_idx(path: Path, array: np.ndarray, gz: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)


def random_images(n: int, h: int, w: int, c: int | None = None, seed: int = 0) -> np.ndarray:
    shape = (n, h, w) if c is None else (n, h, w, c)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


# ------------------------------------------------------------------------------------------ IDX
@pytest.mark.parametrize("gz", [True, False])
def test_idx_pixels_map_exactly_to_minus_one_one(tmp_path, gz):
    x = random_images(7, 5, 6)
    x[0, 0, 0], x[0, 0, 1] = 0, 255
    y = np.arange(7) % 10
    suffix = ".gz" if gz else ""
    write_idx(tmp_path / f"train-images-idx3-ubyte{suffix}", x, gz)
    write_idx(tmp_path / f"train-labels-idx1-ubyte{suffix}", y, gz)
    src = load(name="mnist", root=str(tmp_path), download=False)
    assert src.kind == "image" and src.sample_shape == (1, 5, 6)
    expected = torch.from_numpy(x).float()[:, None] / 127.5 - 1
    assert torch.equal(src.data, expected)
    assert src.data[0, 0, 0, 0] == -1 and src.data[0, 0, 0, 1] == 1
    assert torch.equal(src.labels, torch.from_numpy(y))


def test_fashion_mnist_test_split_in_named_subfolder(tmp_path):
    folder = tmp_path / "fashion_mnist"
    folder.mkdir()
    write_idx(folder / "t10k-images-idx3-ubyte.gz", random_images(3, 4, 4, seed=1), True)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.array([3, 1, 2]), True)
    write_idx(folder / "train-images-idx3-ubyte.gz", random_images(9, 4, 4, seed=2), True)
    src = load(name="fashion_mnist", root=str(tmp_path), split="test", download=False)
    assert len(src) == 3 and src.labels.tolist() == [3, 1, 2]


def test_idx_with_bad_magic_is_a_data_error(tmp_path):
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x12\x34\x08\x03" + bytes(20))
    with pytest.raises(DataError, match="not an IDX file"):
        load(name="mnist", root=str(tmp_path), download=False)


def test_idx_truncated_is_a_data_error(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte", random_images(2, 3, 3), False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(DataError, match="does not match its header"):
        load(name="mnist", root=str(tmp_path), download=False)


def test_missing_files_give_one_line_with_files_and_place(tmp_path):
    with pytest.raises(DataError) as err:
        load(name="mnist", root=str(tmp_path), download=False)
    msg = str(err.value)
    assert "\n" not in msg
    assert "train-images-idx3-ubyte.gz" in msg and str(tmp_path / "mnist") in msg


def test_failed_download_is_reported_not_raised_raw(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr("urllib.request.urlopen", offline)
    with pytest.raises(DataError, match="download failed: network unreachable"):
        load(name="cifar10", root=str(tmp_path), download=True)


def test_root_from_environment_variable(tmp_path, monkeypatch):
    write_idx(tmp_path / "train-images-idx3-ubyte", random_images(2, 3, 3), False)
    monkeypatch.setenv("OCCAMGAN_DATA", str(tmp_path))
    assert len(load(name="mnist", download=False)) == 2


def test_download_verifies_checksum_and_leaves_nothing_on_mismatch(tmp_path):
    payload = tmp_path / "served.bin"
    payload.write_bytes(b"some bytes")
    good = hashlib.md5(b"some bytes").hexdigest()
    target = tmp_path / "out"
    got = download(RemoteFile("file.bin", payload.as_uri(), md5=good), target)
    assert got.read_bytes() == b"some bytes"
    with pytest.raises(DataError, match="checksum mismatch"):
        download(RemoteFile("other.bin", payload.as_uri(), md5="0" * 32), target)
    assert sorted(p.name for p in target.iterdir()) == ["file.bin"]


# ------------------------------------------------------------------------------------------ CIFAR
def write_cifar(folder: Path, n_per_batch: int = 4) -> np.ndarray:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(3)
    all_data = []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8)
        labels = list(rng.integers(0, 10, n_per_batch))
        with open(folder / name, "wb") as fh:
            pickle.dump({b"data": data, b"labels": labels}, fh)
        all_data.append(data)
    return np.concatenate(all_data)


def test_cifar_planes_become_rgb_channels(tmp_path):
    raw = write_cifar(tmp_path / "cifar-10-batches-py")
    src = load(name="cifar10", root=str(tmp_path), download=False)
    assert src.sample_shape == (3, 32, 32) and len(src) == 20
    # pixel (row 1, col 2) of image 0: the R, G, B planes are consecutive 1024-byte blocks
    r, g, b = (raw[0, k * 1024 + 1 * 32 + 2] for k in range(3))
    assert torch.allclose(src.data[0, :, 1, 2], torch.tensor([r, g, b]).float() / 127.5 - 1)
    test = load(name="cifar10", root=str(tmp_path), split="test", download=False)
    assert len(test) == 4


def test_cifar_archive_is_extracted(tmp_path):
    write_cifar(tmp_path / "build" / "cifar-10-batches-py", n_per_batch=2)
    archive = tmp_path / "cifar10" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "build" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    src = load(name="cifar10", root=str(tmp_path), download=False, split="test")
    assert len(src) == 2


def _pstr(b: bytes) -> bytes:  # SHORT_BINSTRING / BINSTRING: a Python-2 str
    return (b"U" + bytes([len(b)]) if len(b) < 256 else b"T" + struct.pack("<i", len(b))) + b


def _pint(v: int) -> bytes:  # BININT1 / BININT
    return b"K" + bytes([v]) if v < 256 else b"J" + struct.pack("<i", v)


def py2_cifar_batch(data: np.ndarray, labels: list[int]) -> bytes:
    """A batch byte for byte as Python 2's cPickle wrote the official files: protocol 2, str
    entries, ``numpy.core.multiarray._reconstruct`` + ``ndarray.__setstate__``, dtype state 3."""
    n = data.shape[0]
    dtype = (b"cnumpy\ndtype\n" + _pstr(b"u1") + b"\x89\x88\x87R"
             + b"(" + _pint(3) + _pstr(b"|") + b"NNN" + b"J\xff\xff\xff\xffJ\xff\xff\xff\xff" + _pint(0) + b"tb")
    array = (b"cnumpy.core.multiarray\n_reconstruct\n" + b"cnumpy\nndarray\n" + _pint(0) + b"\x85" + _pstr(b"b")
             + b"\x87R" + b"(" + _pint(1) + _pint(n) + _pint(3072) + b"\x86" + dtype
             + b"\x89" + _pstr(data.astype(np.uint8).tobytes()) + b"tb")
    return (b"\x80\x02}(" + _pstr(b"batch_label") + _pstr(b"training batch 1 of 5")
            + _pstr(b"data") + array + _pstr(b"labels") + b"](" + b"".join(_pint(int(v)) for v in labels) + b"e"
            + _pstr(b"filenames") + b"](" + b"".join(_pstr(b"img_%d.png" % i) for i in range(n)) + b"e" + b"u.")


def test_cifar_batch_in_the_official_python2_layout(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    data = random_images(3, 1, 3072, seed=8)[:, 0]
    raw = py2_cifar_batch(data, [7, 0, 9])
    assert np.array_equal(pickle.loads(raw, encoding="latin1")["data"], data)  # the helper is a real pickle
    (folder / "test_batch").write_bytes(raw)
    src = load(name="cifar10", root=str(tmp_path), split="test", download=False)
    assert src.labels.tolist() == [7, 0, 9]
    expected = torch.from_numpy(data.reshape(3, 3, 32, 32)).float() / 127.5 - 1
    assert torch.equal(src.data, expected)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_cifar_batches_of_every_pickle_protocol(tmp_path, protocol):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    data = random_images(2, 1, 3072, seed=9)[:, 0]
    labels = list(np.array([4, 5], dtype=np.int64))  # numpy scalars, as the helper above writes them
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": data, b"labels": labels}, protocol=protocol))
    src = load(name="cifar10", root=str(tmp_path), split="test", download=False)
    assert src.labels.tolist() == [4, 5]
    assert torch.equal(src.data, torch.from_numpy(data.reshape(2, 3, 32, 32)).float() / 127.5 - 1)


def write_cifar_bin(folder: Path, n: int = 3) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(5)
    out = {}
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        pixels = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        (folder / name).write_bytes(np.concatenate([labels[:, None], pixels], axis=1).tobytes())
        out[name] = (pixels, labels)
    return out


def test_cifar_binary_version(tmp_path):
    batches = write_cifar_bin(tmp_path / "cifar-10-batches-bin")
    train = load(name="cifar10", root=str(tmp_path), download=False)
    test = load(name="cifar10", root=str(tmp_path), split="test", download=False)
    assert len(train) == 15 and train.sample_shape == (3, 32, 32)
    pixels, labels = batches["test_batch.bin"]
    assert test.labels.tolist() == labels.tolist()
    assert torch.equal(test.data, torch.from_numpy(pixels.reshape(3, 3, 32, 32)).float() / 127.5 - 1)


def test_cifar_binary_archive_is_extracted(tmp_path):
    write_cifar_bin(tmp_path / "build" / "cifar-10-batches-bin", n=2)
    archive = tmp_path / "cifar10" / "cifar-10-binary.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "build" / "cifar-10-batches-bin", arcname="cifar-10-batches-bin")
    assert len(load(name="cifar10", root=str(tmp_path), download=False, split="test")) == 2
    assert sorted(p.name for p in archive.parent.iterdir()) == ["cifar-10-batches-bin", "cifar-10-binary.tar.gz"]


def test_cifar_archive_extraction_keeps_files_already_there(tmp_path):
    write_cifar(tmp_path / "build" / "cifar-10-batches-py", n_per_batch=2)
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "build" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    mine = tmp_path / "cifar-10-batches-py"
    mine.mkdir()
    (mine / "readme.txt").write_text("my notes")  # a folder without batches: the archive is used
    load(name="cifar10", root=str(tmp_path), download=False, split="test")
    assert (mine / "readme.txt").read_text() == "my notes" and (mine / "test_batch").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left


# ------------------------------------------------------------------------------------------ safe pickle
class _Runs:
    def __reduce__(self):
        return (os.system, ("echo this must never run",))


@pytest.mark.parametrize("payload, refused", [
    (_Runs(), "system"),
    ({b"data": np.zeros((1, 3072), np.uint8), b"labels": [_Runs()]}, "system"),
    (np.array([1, None], dtype=object), "not admitted"),
    (np.zeros(2, dtype=[("a", "u1"), ("b", "f4")]), "structured"),
    (np.zeros(2, dtype="datetime64[s]"), "not admitted"),
    (np.ma.masked_array([1, 2]), "numpy.ma"),
    (torch.zeros(2), "torch"),
])
def test_safe_pickle_refuses_all_but_plain_data_and_numeric_arrays(tmp_path, payload, refused):
    path = tmp_path / "f.pkl"
    path.write_bytes(pickle.dumps(payload))
    with pytest.raises(DataError, match=refused) as err:
        safe_pickle.load(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_safe_pickle_rebuilds_numeric_arrays_exactly(tmp_path):
    value = {"c": np.arange(6, dtype=np.int16).reshape(2, 3), "f": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
             "be": np.arange(3, dtype=">u4"), "0d": np.array(2.5), "empty": np.zeros((0, 4)), "b": b"", "t": (1, None, True),
             "s": np.float32(1.5)}
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        path = tmp_path / f"v{protocol}.pkl"
        path.write_bytes(pickle.dumps(value, protocol=protocol))
        got = safe_pickle.load(path)
        for k, v in value.items():
            if isinstance(v, (np.ndarray, np.generic)):
                assert got[k].dtype == v.dtype and np.shape(got[k]) == np.shape(v) and np.array_equal(got[k], v), (protocol, k)
            else:
                assert got[k] == v


# ------------------------------------------------------------------------------------------ npz
@pytest.mark.parametrize("layout", ["nhw", "nhwc", "nchw"])
def test_npz_layouts_agree(tmp_path, layout):
    x = random_images(5, 6, 6, 3, seed=4)
    stored = {"nhw": x[..., 0], "nhwc": x, "nchw": x.transpose(0, 3, 1, 2)}[layout]
    np.savez(tmp_path / "a.npz", images=stored, labels=np.arange(5))
    src = load(name="npz", root=str(tmp_path / "a.npz"))
    ref = x[..., :1] if layout == "nhw" else x
    assert torch.equal(src.data, torch.from_numpy(ref).permute(0, 3, 1, 2).float() / 127.5 - 1)
    assert src.labels.tolist() == list(range(5))


def test_npz_float_in_unit_interval_and_out_of_range_error(tmp_path):
    x = np.array([0.0, 0.5, 1.0], dtype=np.float32).reshape(1, 1, 3)
    np.savez(tmp_path / "f.npz", x=x)
    src = load(name="npz", root=str(tmp_path / "f.npz"))
    assert torch.allclose(src.data.flatten(), torch.tensor([-1.0, 128 / 127.5 - 1, 1.0]), atol=1e-6, rtol=0)
    np.savez(tmp_path / "g.npz", x=x * 2 - 1)
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        load(name="npz", root=str(tmp_path / "g.npz"))


def test_npz_needs_root(tmp_path):
    with pytest.raises(DataError, match="set data.root"):
        load(name="npz")


def test_npz_of_a_single_npy_array_and_of_integer_images(tmp_path):
    x = random_images(3, 4, 4, seed=6)
    np.save(tmp_path / "a.npy", x)
    assert torch.equal(load(name="npz", root=str(tmp_path / "a.npy")).data, torch.from_numpy(x)[:, None].float() / 127.5 - 1)
    np.savez(tmp_path / "i.npz", images=x.astype(np.int64), labels=np.array([1.0, 2.0, 3.0]))
    src = load(name="npz", root=str(tmp_path / "i.npz"))
    assert src.labels.tolist() == [1, 2, 3] and src.data.min() >= -1
    np.savez(tmp_path / "j.npz", images=x.astype(np.int64) + 300)
    with pytest.raises(DataError, match="0..255"):
        load(name="npz", root=str(tmp_path / "j.npz"))
    np.savez(tmp_path / "k.npz", images=x, labels=np.arange(2))
    with pytest.raises(DataError, match="2 labels"):
        load(name="npz", root=str(tmp_path / "k.npz"))


# ------------------------------------------------------------------------------------------ digits
def test_digits_splits_range_and_upsampling():
    train, test = load(name="digits"), load(name="digits", split="test")
    assert len(train) + len(test) == 1797 and len(test) == 297
    assert train.sample_shape == (1, 8, 8)
    assert train.data.min() == -1 and train.data.max() == 1
    assert set(train.labels.unique().tolist()) == set(range(10))
    big = load(name="digits", image_size=32, channels=3)
    assert big.sample_shape == (3, 32, 32)
    assert torch.equal(big.data[:, 0], big.data[:, 1]) and torch.equal(big.data[:, 0], big.data[:, 2])


# ------------------------------------------------------------------------------------------ preparation
def test_resize_keeps_constant_image_constant_and_rgb_to_grey_is_luma(tmp_path):
    x = np.zeros((2, 28, 28, 3), dtype=np.uint8)
    x[0] = 200
    x[1] = (255, 0, 0)
    np.savez(tmp_path / "c.npz", images=x)
    up = load(name="npz", root=str(tmp_path / "c.npz"), image_size=32)
    assert up.sample_shape == (3, 32, 32)
    assert torch.equal(up.data[0], torch.full((3, 32, 32), 200 / 127.5 - 1))
    grey = load(name="npz", root=str(tmp_path / "c.npz"), channels=1)
    # ITU-R 601-2 luma of pure red: 255 * 299 / 1000 = 76.245 -> 76
    assert torch.allclose(grey.data[1], torch.full((1, 28, 28), 76 / 127.5 - 1))


def test_unsupported_channel_count_is_a_data_error():
    with pytest.raises(DataError, match="1 or 3"):
        load(name="digits", channels=2)


# ------------------------------------------------------------------------------------------ folders
def make_folder(root: Path, n: int = 10, size: tuple[int, int] = (12, 12)) -> list[np.ndarray]:
    arrays = []
    for i in range(n):
        arr = random_images(1, size[1], size[0], 3, seed=10 + i)[0]
        sub = root / ("a" if i % 2 else "b") / "deeper"
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(sub / f"img{i:02d}.png")
        arrays.append(arr)
    (root / "notes.txt").write_text("not an image")
    return arrays


def test_folder_is_recursive_sorted_and_lossless_for_png(tmp_path):
    arrays = make_folder(tmp_path)
    src = load(name="image_folder", root=str(tmp_path))
    assert len(src) == 10 and src.sample_shape == (3, 12, 12) and src.stream is None
    # sorted paths: a/deeper/img01, img03, ..., then b/deeper/img00, img02, ...
    order = [1, 3, 5, 7, 9, 0, 2, 4, 6, 8]
    expected = torch.from_numpy(np.stack([arrays[i] for i in order])).permute(0, 3, 1, 2).float() / 127.5 - 1
    assert torch.equal(src.data, expected)


def test_folder_centre_crops_non_square_images(tmp_path):
    arr = np.zeros((8, 16, 3), dtype=np.uint8)  # 16 wide, 8 high
    arr[:, 4:12] = 255  # the central 8 columns are white
    Image.fromarray(arr).save(tmp_path / "wide.png")
    src = load(name="image_folder", root=str(tmp_path), image_size=8, resize_filter="nearest")
    assert torch.equal(src.data[0], torch.ones(3, 8, 8))


def test_folder_of_grey_jpegs_is_one_channel(tmp_path):
    Image.fromarray(np.full((10, 10), 90, dtype=np.uint8)).save(tmp_path / "g.JPG")
    src = load(name="image_folder", root=str(tmp_path))
    assert src.sample_shape == (1, 10, 10)
    assert abs(float(src.data.mean()) - (90 / 127.5 - 1)) < 2 / 127.5


def test_big_folder_streams_with_the_in_memory_batch_order(tmp_path):
    make_folder(tmp_path, n=10)
    memory = load(name="image_folder", root=str(tmp_path))
    stream = load(name="image_folder", root=str(tmp_path), max_memory_mb=0)
    assert stream.stream is not None and len(stream) == 10 and stream.sample_shape == (3, 12, 12)
    a = memory.batch_sampler(batch_size=4, seed=5)
    b = stream.batch_sampler(batch_size=4, seed=5)
    assert isinstance(a, BatchSampler) and isinstance(b, StreamingBatchSampler)
    for _ in range(7):  # crosses epoch boundaries
        assert torch.equal(a.next(), b.next())
    assert torch.equal(torch.cat(list(stream.iter_batches(3))), memory.data)


def test_streaming_sampler_resumes_exactly_with_worker_processes(tmp_path):
    make_folder(tmp_path, n=9)
    src = load(name="image_folder", root=str(tmp_path), max_memory_mb=0, num_workers=2)
    first = src.batch_sampler(batch_size=4, seed=1)
    for _ in range(3):
        first.next()
    state = first.state_dict()
    expected = [first.next() for _ in range(4)]
    resumed = src.batch_sampler(batch_size=4, seed=99)
    resumed.load_state_dict(state)
    assert all(torch.equal(e, resumed.next()) for e in expected)


def test_empty_folder_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="no .png"):
        load(name="image_folder", root=str(tmp_path))


def _spoil(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:60])  # a truncated PNG


@pytest.mark.parametrize("max_memory_mb", [2048, 0], ids=["in-memory", "streamed"])
def test_unreadable_images_are_named_or_skipped_with_a_count(tmp_path, caplog, max_memory_mb):
    arrays = make_folder(tmp_path, n=6)
    bad = [tmp_path / "b" / "deeper" / "img00.png", tmp_path / "a" / "deeper" / "img03.png"]
    for path in bad:
        _spoil(path)
    (tmp_path / "a" / "zz.jpg").write_bytes(b"not a jpeg")
    opts = dict(name="image_folder", root=str(tmp_path), max_memory_mb=max_memory_mb)
    with pytest.raises(DataError) as err:
        DATASETS.get("image_folder")(data_cfg(**opts))
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(str(bad[1])) and "2 more" in msg and "skip_bad_files" in msg
    with caplog.at_level(logging.WARNING, logger="occamgan.data"):
        src = DATASETS.get("image_folder")(data_cfg(skip_bad_files=True, **opts))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "skipped 3 unreadable image files of 7" in warnings[0]
    assert len(src) == 4 and src.info["skipped_bad_files"] == 3
    kept = [arrays[i] for i in (1, 5, 2, 4)]  # sorted: a/deeper/img01, img05, b/deeper/img02, img04
    expected = torch.from_numpy(np.stack(kept)).permute(0, 3, 1, 2).float() / 127.5 - 1
    got = src.data if src.stream is None else torch.cat(list(src.iter_batches(3)))
    assert torch.equal(got, expected)


def test_skipping_every_file_is_still_an_error(tmp_path):
    (tmp_path / "x.png").write_bytes(b"junk")
    (tmp_path / "y.png").write_bytes(b"junk too")
    with pytest.raises(DataError, match="none of the 2 image files"):
        DATASETS.get("image_folder")(data_cfg(name="image_folder", root=str(tmp_path), skip_bad_files=True))


def test_file_spoilt_while_streaming_is_one_line_from_a_worker(tmp_path):
    make_folder(tmp_path, n=6)
    src = load(name="image_folder", root=str(tmp_path), max_memory_mb=0, num_workers=2)
    victim = tmp_path / "a" / "deeper" / "img01.png"
    _spoil(victim)
    sampler = src.batch_sampler(batch_size=6, seed=0)
    with pytest.raises(DataError) as err:
        sampler.next()
    assert str(err.value).startswith(f"{victim}: ") and "\n" not in str(err.value)


# ------------------------------------------------------------------------------------------ MNIST
@needs_real_mnist()
def test_real_mnist_test_split_class_counts(real_mnist_root):
    src = load(name="mnist", root=str(real_mnist_root / "mnist"), split="test", download=False)
    assert src.sample_shape == (1, 28, 28) and len(src) == 10_000
    counts = torch.bincount(src.labels).tolist()
    assert counts == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert src.data.min() == -1 and src.data.max() == 1
