"""One registry mechanism for the whole project: a name -> recipe mapping filled by a decorator.

    MODELS = Registry("model")

    @MODELS.register("s4_legs")
    def s4_legs() -> LayerSpec: ...

An unknown name raises `UserError` listing every valid name, so a typo in a config or on the
command line is answered with the fix.

Plugins: a registry made with `plugins="<entry point group>"` also holds what installed packages
register. Each entry point of that group names a module (`my_ssm.models`) that registers its
recipes with the same decorator (`@MODELS.register("my_ssm")`); the modules are imported the
first time the registry is queried, so importing a package never imports its plugins.
"""

import importlib.metadata
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from common.errors import UserError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps registered names to recipes (any object: a function, a class, a spec).

    kind: what a name names (`model`, `task`), for messages. plugins: the entry point group
    whose modules register more names, loaded on the first query (None: built-ins only).
    """

    def __init__(self, kind: str, plugins: str | None = None):
        self.kind = kind
        self.plugins = plugins
        self._entries: dict[str, T] = {}
        self._plugins_loaded = plugins is None
        self.origins: dict[str, str] = {}  # plugin name -> its entry point, e.g. "my_ssm.models"

    def _load_plugins(self) -> None:
        """Import every module of the entry point group once (a broken one is a `UserError`)."""
        if self._plugins_loaded:
            return
        self._plugins_loaded = True  # before importing: a plugin may query the registry
        for entry in importlib.metadata.entry_points(group=self.plugins):
            before = set(self._entries)
            try:
                entry.load()
            except Exception as error:
                raise UserError(
                    f"{self.kind} plugin {entry.name!r} ({entry.value}, entry point group "
                    f"{self.plugins}) failed to import: {type(error).__name__}: {error}; fix or "
                    "uninstall that package"
                ) from error
            for name in set(self._entries) - before:
                self.origins[name] = entry.value

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that registers its target under `name`; a name may be registered once."""

        def decorate(entry: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = entry
            return entry

        return decorate

    def __getitem__(self, name: str) -> T:
        self._load_plugins()
        try:
            return self._entries[name]
        except KeyError:
            valid = ", ".join(sorted(self._entries))
            raise UserError(
                f"unknown {self.kind} {name!r}; valid {self.kind} names are: {valid}"
            ) from None

    def __contains__(self, name: object) -> bool:
        self._load_plugins()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self._load_plugins()
        return len(self._entries)

    def names(self) -> list[str]:
        """All registered names (built-in and plugins), sorted."""
        self._load_plugins()
        return sorted(self._entries)
