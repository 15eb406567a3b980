"""Bad data files through the command line: exit code 2, one line on stderr naming the culprit
file, no traceback, nothing changed or created; and no data file can run code (issue 14).

Every case builds tiny files in tmp_path and runs ``occamgan train`` on them (in-process with
typer's CliRunner; the pickle attack also in a real subprocess). Data are built before the run
directory is touched, so one training step and the default model suffice."""
from __future__ import annotations

import gzip
import hashlib
import io
import logging
import os
import pickle
import struct
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import occamgan.commands  # noqa: F401  (registers the commands on the app)
from occamgan.cli import app


# ------------------------------------------------------------------------------------------ helpers
def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file below ``root`` (and a marker for every folder), by relative path."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        out[rel] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "<dir>"
    return out


def train(root: Path, *overrides: str) -> "object":
    args = ["train", "--out", str(root / "run"), "--set", "train.steps=1", "--set", "data.download=false"]
    for item in overrides:
        args += ["--set", item]
    return CliRunner().invoke(app, args)


def assert_one_line_naming(result, culprit: Path, *fragments: str) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception  # not a stray exception
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    line = lines[0]
    assert line.startswith("error: ") and str(culprit) in line, line
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    return line


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    return header + array.tobytes()


def write_mnist(folder: Path, n: int = 4, images: bytes | None = None, labels: bytes | None = None,
                gz: bool = True) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    x = np.random.default_rng(0).integers(0, 256, (n, 6, 6), dtype=np.uint8)
    suffix = ".gz" if gz else ""
    img = folder / f"train-images-idx3-ubyte{suffix}"
    lab = folder / f"train-labels-idx1-ubyte{suffix}"
    raw_x = images if images is not None else idx_bytes(x)
    raw_y = labels if labels is not None else idx_bytes(np.arange(n, dtype=np.uint8) % 10)
    img.write_bytes(gzip.compress(raw_x) if gz and images is None else raw_x)
    lab.write_bytes(gzip.compress(raw_y) if gz and labels is None else raw_y)
    return img, lab


def cifar_batch(n: int = 2) -> dict:
    rng = np.random.default_rng(1)
    return {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": [int(v) for v in rng.integers(0, 10, n)]}


def write_cifar(folder: Path, override: dict[str, bytes] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes((override or {}).get(name) or pickle.dumps(cifar_batch()))
    return folder


class _Creates:
    """Unpickling this calls ``open(path, "w")``: it creates ``path`` (a stand-in for any code)."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def crafted_batch(marker: Path, where: str = "top", protocol: int = pickle.DEFAULT_PROTOCOL) -> bytes:
    if where == "top":
        return pickle.dumps(_Creates(marker), protocol=protocol)
    batch = cifar_batch()
    batch[b"labels"] = [_Creates(marker)]
    return pickle.dumps(batch, protocol=protocol)


def png_bytes(seed: int = 0, size: int = 8) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def jpeg_bytes(seed: int = 0, size: int = 16) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def image_dir(root: Path, bad_name: str, bad: bytes, n_good: int = 3) -> Path:
    folder = root / "images"
    folder.mkdir()
    for i in range(n_good):
        (folder / f"good{i}.png").write_bytes(png_bytes(i))
    (folder / bad_name).write_bytes(bad)
    return folder / bad_name


def npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


# ------------------------------------------------------------------------------------------ cases
# each case: tmp_path -> (overrides, culprit file, fragments the line must hold)
Case = Callable[[Path], tuple[list[str], Path, tuple[str, ...]]]


def mnist_case(**kw) -> Case:
    culprit_is_labels = kw.pop("culprit_labels", False)
    fragments = kw.pop("fragments", ())

    def build(tmp: Path):
        img, lab = write_mnist(tmp / "mnist", **kw)
        return ["data.name=mnist", f"data.root={tmp}"], lab if culprit_is_labels else img, fragments

    return build


def gz_truncated(tmp: Path):
    img, _ = write_mnist(tmp / "mnist")
    img.write_bytes(img.read_bytes()[:30])
    return ["data.name=mnist", f"data.root={tmp}"], img, ("gzip",)


def gz_bad_crc(tmp: Path):
    img, _ = write_mnist(tmp / "mnist")
    raw = bytearray(img.read_bytes())
    raw[-8] ^= 0xFF  # the CRC32 of the trailer
    img.write_bytes(bytes(raw))
    return ["data.name=mnist", f"data.root={tmp}"], img, ("gzip",)


def cifar_case(name: str, payload: Callable[[Path], bytes], fragments: tuple[str, ...] = ()) -> Case:
    def build(tmp: Path):
        folder = write_cifar(tmp / "cifar-10-batches-py", {name: payload(tmp)})
        return ["data.name=cifar10", f"data.root={tmp}"], folder / name, fragments

    return build


def cifar_bin_truncated(tmp: Path):
    folder = tmp / "cifar-10-batches-bin"
    folder.mkdir()
    record = bytes([3]) + bytes(range(256)) * 12
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        (folder / name).write_bytes(record * 2)
    (folder / "data_batch_3.bin").write_bytes(record * 2 + record[:100])
    return ["data.name=cifar10", f"data.root={tmp}"], folder / "data_batch_3.bin", ("3073",)


def cifar_archive_truncated(tmp: Path):
    build = tmp / "build"
    write_cifar(build / "cifar-10-batches-py")
    archive = tmp / "cifar10" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(build / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    for p in sorted(build.rglob("*"), reverse=True):
        p.unlink() if p.is_file() else p.rmdir()
    build.rmdir()
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    return ["data.name=cifar10", f"data.root={tmp}"], archive, ("archive",)


def folder_case(bad_name: str, bad: Callable[[], bytes], *extra: str) -> Case:
    def build(tmp: Path):
        culprit = image_dir(tmp, bad_name, bad())
        return ["data.name=image_folder", f"data.root={culprit.parent}", *extra], culprit, ("skip_bad_files",)

    return build


def npz_case(content: Callable[[], bytes], fragments: tuple[str, ...] = ()) -> Case:
    def build(tmp: Path):
        path = tmp / "set.npz"
        path.write_bytes(content())
        return ["data.name=npz", f"data.root={path}"], path, fragments

    return build


def npz_directory(tmp: Path):
    path = tmp / "set.npz"
    path.mkdir()
    (path / "inside.txt").write_text("a folder named like a file")
    return ["data.name=npz", f"data.root={path}"], path, ("directory",)


def nan_images() -> bytes:
    x = np.full((3, 4, 4), 0.5, dtype=np.float32)
    x.flat[[1, 5, 9]] = np.nan
    x.flat[20] = np.inf
    return npz_bytes(images=x)


CASES: dict[str, Case] = {
    "gz-not-gzip-inside": mnist_case(images=b"\x1f\x8b" + b"not really gzip data", fragments=("gzip",)),
    "gz-truncated": gz_truncated,
    "gz-bad-crc": gz_bad_crc,
    "idx-bad-magic": mnist_case(images=b"\x12\x34\x08\x03" + bytes(40), gz=False, fragments=("magic",)),
    "idx-header-truncated": mnist_case(images=bytes([0, 0, 8, 3]) + struct.pack(">i", 4), gz=False),
    "idx-size-mismatch": mnist_case(images=idx_bytes(np.zeros((4, 6, 6), np.uint8))[:-7], gz=False,
                                    fragments=("header",)),
    "idx-wrong-dims": mnist_case(images=idx_bytes(np.zeros((4, 36), np.uint8)), gz=False),
    "idx-label-count": mnist_case(labels=idx_bytes(np.zeros(3, np.uint8)), gz=False, culprit_labels=True),
    "idx-empty": mnist_case(images=idx_bytes(np.zeros((0, 6, 6), np.uint8)), gz=False, fragments=("no images",)),
    "cifar-code-in-pickle": cifar_case("data_batch_1", lambda t: crafted_batch(t / "PWNED"), ("io.open",)),
    "cifar-pickle-truncated": cifar_case("data_batch_2", lambda t: pickle.dumps(cifar_batch())[:200]),
    "cifar-pickle-not-a-dict": cifar_case("data_batch_1", lambda t: pickle.dumps([1, 2, 3])),
    "cifar-pickle-object-array": cifar_case(
        "data_batch_4", lambda t: pickle.dumps({b"data": np.array([[1, "x"]], dtype=object), b"labels": [1]})),
    "cifar-pickle-wrong-width": cifar_case(
        "data_batch_5", lambda t: pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [1, 2]})),
    "cifar-bin-truncated": cifar_bin_truncated,
    "cifar-archive-truncated": cifar_archive_truncated,
    "png-garbage": folder_case("broken.png", lambda: b"this is not a png"),
    "png-truncated": folder_case("cut.png", lambda: png_bytes(7)[:150]),
    "jpeg-truncated": folder_case("cut.jpg", lambda: jpeg_bytes(7)[: len(jpeg_bytes(7)) - 120]),
    "png-truncated-streamed": folder_case("cut.png", lambda: png_bytes(7)[:150], "data.max_memory_mb=0"),
    "npz-not-a-zip": npz_case(lambda: b"plain text, not an archive", ("not an .npz",)),
    "npz-truncated": npz_case(lambda: npz_bytes(images=np.zeros((4, 6, 6), np.uint8))[:120]),
    "npz-object-array": npz_case(lambda: npz_bytes(images=np.array([None, {"a": 1}], dtype=object)), ("object",)),
    "npz-is-a-directory": npz_directory,
    "npz-non-finite": npz_case(nan_images, ("4 non-finite",)),
    "npz-empty": npz_case(lambda: npz_bytes(images=np.zeros((0, 4, 4), np.uint8)), ("no images",)),
    "npz-nan-labels": npz_case(lambda: npz_bytes(images=np.zeros((2, 4, 4), np.uint8),
                                                 labels=np.array([1.0, np.nan])), ("1 non-finite",)),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_bad_data_file_is_one_line_naming_it_and_changes_nothing(tmp_path, case):
    overrides, culprit, fragments = CASES[case](tmp_path)
    before = snapshot(tmp_path)
    result = train(tmp_path, *overrides)
    assert_one_line_naming(result, culprit, *fragments)
    assert snapshot(tmp_path) == before  # nothing changed, nothing created (no run dir, no extraction)


# ------------------------------------------------------------------------------------------ security
@pytest.mark.parametrize("where", ["top", "nested"])
@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_crafted_cifar_pickle_is_refused_before_it_runs(tmp_path, where, protocol):
    marker = tmp_path / "PWNED"
    control = tmp_path / "control" / "PWNED"
    control.parent.mkdir()
    made = pickle.loads(crafted_batch(control, where, protocol))  # plain pickle does run it...
    (made if where == "top" else made[b"labels"][0]).close()
    assert control.exists()
    control.unlink()
    folder = write_cifar(tmp_path / "data" / "cifar-10-batches-py", {"test_batch": crafted_batch(marker, where, protocol)})
    before = snapshot(tmp_path)
    result = train(tmp_path, "data.name=cifar10", f"data.root={tmp_path / 'data'}", "data.split=test")
    assert_one_line_naming(result, folder / "test_batch", "refused")
    assert not marker.exists()
    assert snapshot(tmp_path) == before


def test_crafted_cifar_pickle_in_a_real_process(tmp_path):
    marker = tmp_path / "PWNED"
    folder = write_cifar(tmp_path / "cifar-10-batches-py", {"data_batch_1": crafted_batch(marker)})
    before = snapshot(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "occamgan", "train", "--set", "data.name=cifar10", "--set", f"data.root={tmp_path}",
         "--set", "data.download=false", "--set", "train.steps=1", "--out", str(tmp_path / "run")],
        capture_output=True, text=True, cwd=tmp_path, env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and str(folder / "data_batch_1") in lines[0] and "io.open" in lines[0], lines
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not marker.exists()
    assert snapshot(tmp_path) == before


def test_no_npz_is_loaded_with_pickles_allowed():
    """Every np.load in the package passes allow_pickle=False (the default may change, and a
    reader of a user's file must never unpickle)."""
    package = Path(__import__("occamgan").__file__).parent
    offenders = []
    for path in package.rglob("*.py"):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if "np.load(" in line and "allow_pickle=False" not in line:
                offenders.append(f"{path.relative_to(package)}:{n}")
    data_offenders = [o for o in offenders if o.startswith("data/")]
    assert not data_offenders, data_offenders


# ------------------------------------------------------------------------------------------ skipping
def _schema_has_skip_bad_files() -> bool:
    from occamgan.config import build_config

    return "skip_bad_files" in type(build_config({}).data).model_fields


@pytest.mark.skipif(not _schema_has_skip_bad_files(), reason="data.skip_bad_files not in the config schema yet")
def test_skip_bad_files_trains_on_the_rest_and_says_how_many_it_left_out(tmp_path, caplog):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(6):
        (folder / f"good{i}.png").write_bytes(png_bytes(i, size=16))
    (folder / "cut.png").write_bytes(png_bytes(9, size=16)[:150])
    (folder / "junk.jpg").write_bytes(b"not a jpeg")
    before = snapshot(folder)
    args = ["data.name=image_folder", f"data.root={folder}", "data.image_size=16", "model.name=dcgan",
            "model.latent_dim=4", "model.ngf=4", "model.ndf=4", "train.batch_size=4", "eval.n_samples=8"]
    refused = train(tmp_path, *args)
    assert_one_line_naming(refused, folder / "cut.png", "1 more", "skip_bad_files")
    assert not (tmp_path / "run").exists()
    with caplog.at_level(logging.WARNING, logger="occamgan.data"):  # outside pytest: a line on stderr
        result = train(tmp_path, *args, "data.skip_bad_files=true")
    assert result.exit_code == 0, (result.output, result.exception)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("occamgan.data")]
    assert len(warnings) == 1 and "skipped 2 unreadable image files of 8" in warnings[0]
    assert snapshot(folder) == before  # the bad files are left alone
    assert (tmp_path / "run" / "summary.json").is_file()
