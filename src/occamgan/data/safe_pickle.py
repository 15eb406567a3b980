"""A restricted unpickler for data files that are pickles (CIFAR-10's python batches).

``pickle.load`` calls whatever callable a pickle names, so a crafted file runs code when it is
read. :func:`load` admits plain data (dicts, lists, tuples, sets, str, bytes, numbers, None,
booleans, which need no global) and NumPy arrays of plain numeric dtypes, under both module
spellings of NumPy's pickle helpers (``numpy.core`` of NumPy 1 and of the Python-2 files,
``numpy._core`` of NumPy 2):

- ``_reconstruct``, ``ndarray``, ``dtype``: an array pickled with protocol 0-4;
- ``_frombuffer``: an array pickled with protocol 5;
- ``scalar``: a NumPy scalar (e.g. a list of ``np.int64`` labels);
- ``_codecs.encode`` (latin-1 only) and ``bytes()`` (no arguments): how Python 3 writes
  ``bytes`` with protocol 0-2.

Any other global (``os.system``, ``builtins.eval``, any class) is refused before anything is
called, with a one-line :class:`DataError` naming the file and the refused global; so are
persistent ids. Not even NumPy's own unpickling code sees the file's contents: the admitted
names resolve to inert stand-ins that only record their arguments, and the arrays are built
afterwards from the recorded raw bytes with ``np.frombuffer``, once the dtype has been checked
to be a plain bool/int/uint/float/complex one and the byte count to match the shape. Object and
structured arrays are refused.
"""
from __future__ import annotations

import math
import pickle
import re
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError

#: dtype strings an array may have: bool, signed/unsigned int, float, complex of a given size
PLAIN_DTYPE = re.compile(r"[biufc]\d{1,2}")


class Refused(pickle.UnpicklingError):
    """The pickle asks for something outside what data pickles may hold."""


def _text(value: Any) -> str:
    """A str from a str or bytes field (Python-2 strings arrive as either, by ``encoding``)."""
    if isinstance(value, bytes):
        return value.decode("latin1")
    if isinstance(value, str):
        return value
    raise Refused(f"expected a string, got {type(value).__name__}")


def _raw(value: Any) -> bytes:
    """Raw array bytes: bytes/bytearray (Python 3), or latin-1 decoded str (Python 2 + latin1)."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("latin1")
    if isinstance(value, pickle.PickleBuffer):
        return bytes(value.raw())
    raise Refused(f"array data of type {type(value).__name__} (object arrays are not admitted)")


# ------------------------------------------------------------------------------ inert stand-ins
class _DtypeStub:
    __slots__ = ("spec", "endian")

    def __init__(self, spec: Any, align: Any = False, copy: Any = True):
        self.spec, self.endian = _text(spec), "="

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) < 8 or state[0] not in (3, 4):
            raise Refused("unknown dtype state")
        if state[3] is not None or state[4] is not None:
            raise Refused("structured dtypes are not admitted")
        self.endian = _text(state[1])

    def build(self) -> np.dtype:
        if not PLAIN_DTYPE.fullmatch(self.spec):
            raise Refused(f"dtype {self.spec!r} is not admitted (plain numeric dtypes only)")
        endian = self.endian if self.endian in ("<", ">") else "="
        return np.dtype(endian + self.spec)


class _ArrayStub:
    __slots__ = ("state",)

    def __init__(self, state: tuple | None = None):
        self.state = state

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def build(self) -> np.ndarray:
        state = self.state
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise Refused("unknown array state")
        shape, dtype, fortran, raw = state[-4:]
        if not isinstance(dtype, _DtypeStub):
            raise Refused("array without a dtype")
        dt = dtype.build()
        if isinstance(shape, int):
            shape = (shape,)
        if not isinstance(shape, tuple) or not all(isinstance(s, int) and s >= 0 for s in shape):
            raise Refused(f"bad array shape {shape!r}")
        data = _raw(raw)
        if len(data) != dt.itemsize * math.prod(shape):
            raise Refused(f"array of shape {shape} and dtype {dt} with {len(data)} bytes")
        return np.frombuffer(data, dt).reshape(shape, order="F" if fortran else "C")


class _ScalarStub:
    __slots__ = ("dtype", "raw")

    def __init__(self, dtype: Any, raw: Any):
        if not isinstance(dtype, _DtypeStub):
            raise Refused("scalar without a dtype")
        self.dtype, self.raw = dtype, raw

    def __setstate__(self, state: Any) -> None:
        raise Refused("scalars take no state")

    def build(self) -> np.generic:
        dt = self.dtype.build()
        data = _raw(self.raw)
        if len(data) != dt.itemsize:
            raise Refused(f"scalar of dtype {dt} with {len(data)} bytes")
        return np.frombuffer(data, dt)[0]


class _NdarrayType:
    """Stands for ``numpy.ndarray``: only ever an argument of ``_reconstruct``."""

    __slots__ = ()


_NDARRAY = _NdarrayType()


def _reconstruct(subtype: Any, shape: Any, typecode: Any) -> _ArrayStub:
    if subtype is not _NDARRAY:
        raise Refused("_reconstruct of something other than numpy.ndarray")
    return _ArrayStub()


def _frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> _ArrayStub:
    return _ArrayStub((shape, dtype, _text(order) == "F", buf))


def _latin1_encode(text: Any, encoding: Any = "latin1") -> bytes:
    """``_codecs.encode`` as protocol 0-2 pickles of ``bytes`` use it, and nothing more."""
    if not isinstance(text, str) or not isinstance(encoding, str) or \
            encoding.lower().replace("-", "").replace("_", "") not in ("latin1", "iso88591"):
        raise Refused(f"_codecs.encode is admitted only for latin-1 text (got {encoding!r})")
    return text.encode("latin1")


def _empty_bytes(*args: Any) -> bytes:
    """``bytes()``: how Python 3 writes ``b""`` with protocol 0-2 (nothing else is admitted)."""
    if args:
        raise Refused("bytes() is admitted only without arguments")
    return b""


def _allowed() -> dict[tuple[str, str], Any]:
    table: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): _NDARRAY,
        ("numpy", "dtype"): _DtypeStub,
        ("_codecs", "encode"): _latin1_encode,
        ("builtins", "bytes"): _empty_bytes,
        ("__builtin__", "bytes"): _empty_bytes,  # the name Python 3 writes with protocol < 3
    }
    for core in ("numpy.core", "numpy._core"):
        table[(f"{core}.multiarray", "_reconstruct")] = _reconstruct
        table[(f"{core}.multiarray", "scalar")] = _ScalarStub
        table[(f"{core}.numeric", "_frombuffer")] = _frombuffer
    return table


#: (module, name) a pickle may name -> the stand-in it gets
ALLOWED = _allowed()


class RefusedGlobal(Refused):
    """A pickle named a global outside :data:`ALLOWED`."""

    def __init__(self, module: str, name: str):
        super().__init__(f"{module}.{name}")
        self.module, self.name = module, name


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` answers only from :data:`ALLOWED` (never imports)."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED[(module, name)]
        except KeyError:
            raise RefusedGlobal(module, name) from None

    def persistent_load(self, pid: Any) -> Any:
        raise Refused("persistent ids are not admitted")


def _materialise(obj: Any, memo: dict[int, Any]) -> Any:
    """Replace the stand-ins by NumPy objects, inside dicts, lists, tuples and sets."""
    key = id(obj)
    if key in memo:
        return memo[key]
    if isinstance(obj, (_ArrayStub, _ScalarStub, _DtypeStub)):
        memo[key] = out = obj.build()
    elif isinstance(obj, _NdarrayType):
        raise Refused("a bare numpy.ndarray type")
    elif isinstance(obj, dict):
        memo[key] = out = {}
        for k, v in obj.items():
            out[_materialise(k, memo)] = _materialise(v, memo)
    elif isinstance(obj, list):
        memo[key] = out = []
        out.extend(_materialise(v, memo) for v in obj)
    elif isinstance(obj, tuple):
        memo[key] = out = tuple(_materialise(v, memo) for v in obj)
    elif isinstance(obj, (set, frozenset)):
        memo[key] = out = type(obj)(_materialise(v, memo) for v in obj)
    else:  # str, bytes, bytearray, int, float, complex, bool, None: what the opcodes themselves make
        out = obj
    return out


def load(path: Path, encoding: str = "latin1") -> Any:
    """Unpickle the file ``path`` admitting only plain data and NumPy arrays; any failure is a
    one-line :class:`DataError` naming the file.

    ``encoding`` decodes Python-2 ``str`` objects; latin-1 (the default, as torchvision uses)
    keeps the raw bytes of Python-2 pickled arrays intact."""
    try:
        with open(path, "rb") as fh:
            obj = RestrictedUnpickler(fh, encoding=encoding).load()
        return _materialise(obj, {})
    except RefusedGlobal as exc:
        raise DataError(f"{path}: refused to unpickle global {exc.module}.{exc.name} "
                        f"(data pickles may hold only plain data and NumPy arrays)") from None
    except Refused as exc:
        raise DataError(f"{path}: refused to unpickle: {exc}") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, expected a pickled data file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    # EOFError: truncated; the rest: garbage, or an admitted stand-in given bad arguments
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError,
            MemoryError, OverflowError, RecursionError, UnicodeError, zlib.error) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: not a readable data pickle, corrupt or truncated ({detail})") from None
