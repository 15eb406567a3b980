"""Name -> factory registries for every plug-in kind (objectives, data sets, models, ...).

A plug-in registers itself with a decorator in the file that defines it, together with the
pydantic model of its own parameters (:mod:`occamgan.params`); builders look names up here and the
config schema composes its sections from the registered parameter models. Unknown names raise
:class:`UnknownNameError`, whose message lists the allowed values and a "did you mean" suggestion
(scikit-learn style), so the CLI can print it as a one-line error.
"""
from __future__ import annotations

import difflib
from typing import Callable, Generic, Iterator, TypeVar

from .params import NoParams, Params

T = TypeVar("T")


class UnknownNameError(KeyError):
    """A registry lookup for a name that is not registered."""

    def __init__(self, kind: str, name: str, allowed: list[str]):
        self.kind, self.name, self.allowed = kind, name, allowed
        close = difflib.get_close_matches(name, allowed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        super().__init__(f"unknown {kind} {name!r}{hint}; allowed: {', '.join(allowed)}")

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0]


class Registry(Generic[T]):
    """A mapping name -> factory, each with the parameter model of its knobs."""

    #: bumped on every registration, so composed schemas know when to rebuild
    version = 0

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}
        self._params: dict[str, type[Params]] = {}

    def register(self, name: str, params: type[Params] | None = None) -> Callable[[T], T]:
        def decorate(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            self._params[name] = params or NoParams
            Registry.version += 1
            return obj

        return decorate

    def add(self, name: str, obj: T, params: type[Params] | None = None) -> None:
        self.register(name, params)(obj)

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, self.names()) from None

    def params(self, name: str) -> type[Params]:
        """The parameter model of ``name`` (:class:`NoParams` when it has no knobs)."""
        self.get(name)
        return self._params[name]

    def create(self, name: str, *args: object, **params: object) -> object:
        """Call ``name``'s factory with its parameters validated by its own model (and any leading
        arguments the kind's factories take), e.g. ``OBJECTIVES.create("wgan_gp", gp_weight=5)``."""
        return self.get(name)(self.params(name)(**params), *args)  # type: ignore[operator]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
