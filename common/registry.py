"""One registry mechanism for the whole project: a name -> recipe mapping filled by a decorator.

    MODELS = Registry("model")

    @MODELS.register("s4_legs")
    def s4_legs() -> LayerSpec: ...

An unknown name raises `UserError` listing every valid name, so a typo in a config or on the
command line is answered with the fix.
"""

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from common.errors import UserError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps registered names to recipes (any object: a function, a class, a spec)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that registers its target under `name`; a name may be registered once."""

        def decorate(entry: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = entry
            return entry

        return decorate

    def __getitem__(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            valid = ", ".join(sorted(self._entries))
            raise UserError(
                f"unknown {self.kind} {name!r}; valid {self.kind} names are: {valid}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[str]:
        """All registered names, sorted."""
        return sorted(self._entries)
