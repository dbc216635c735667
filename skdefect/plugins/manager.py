"""The one plugin manager: registers the built-ins, loads entry points, resolves names."""

from __future__ import annotations

import importlib.metadata
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pluggy

from . import hookspecs
from .hookspecs import call_with_accepted, ignored_arguments, needs_features

__all__ = [
    "PluginEntry",
    "PluginWarning",
    "PluginConflictError",
    "SkdefectPluginManager",
    "get_plugin_manager",
    "get_loss",
    "ignored_arguments",
    "needs_features",
    "get_sampler",
    "get_backbone",
    "list_plugins",
    "call_with_accepted",
]


class PluginWarning(UserWarning):
    """A plugin failed to import or its hook raised; the others still load."""


class PluginConflictError(ValueError):
    """Two plugins contributed the same name for one kind."""


@dataclass(frozen=True)
class PluginEntry:
    """One registered name."""

    name: str
    kind: str
    factory: Callable[..., Any]
    origin: str


class SkdefectPluginManager:
    """Holds the pluggy manager and the resolved name tables.

    Parameters
    ----------
    load_entry_points : bool, default=True
        Load the third-party plugins announced in the ``skdefect`` entry-point
        group. The built-in plugin is always registered.
    """

    def __init__(self, load_entry_points: bool = True) -> None:
        self._pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self._pm.add_hookspecs(hookspecs)
        self._origins: dict[str, str] = {}
        self._tables: dict[str, dict[str, PluginEntry]] | None = None
        self._lock = threading.RLock()
        from . import builtin

        self.register(builtin, name="skdefect", origin="skdefect (built-in)")
        if load_entry_points:
            self.load_entry_points()

    # -- registration -------------------------------------------------------------
    def register(self, plugin: object, name: str | None = None, origin: str | None = None) -> str:
        """Register ``plugin`` (a module or object with hook implementations)."""
        with self._lock:
            plugin_name = self._pm.register(plugin, name=name)
            if plugin_name is None:  # pluggy returns None for a blocked name
                raise ValueError(f"plugin name {name!r} is blocked")
            self._origins[plugin_name] = origin or f"{plugin_name!r} (registered at run time)"
            self._tables = None
            return plugin_name

    def unregister(self, name: str) -> None:
        """Remove the plugin registered under ``name``."""
        with self._lock:
            self._pm.unregister(name=name)
            self._origins.pop(name, None)
            self._tables = None

    def load_entry_points(self, group: str = hookspecs.ENTRY_POINT_GROUP) -> list[str]:
        """Import and register every entry point of ``group``; failures only warn."""
        loaded = []
        for ep in importlib.metadata.entry_points(group=group):
            if self._pm.has_plugin(ep.name):
                continue
            dist = getattr(ep, "dist", None)
            where = f"{dist.name} {dist.version}" if dist is not None else "unknown distribution"
            origin = f"{ep.name} = {ep.value} ({where})"
            try:
                plugin = ep.load()
            except Exception as exc:  # noqa: BLE001 - a broken plugin must not break skdefect
                warnings.warn(
                    f"skdefect plugin {origin} failed to import and is skipped: "
                    f"{type(exc).__name__}: {exc}",
                    PluginWarning,
                    stacklevel=2,
                )
                continue
            loaded.append(self.register(plugin, name=ep.name, origin=origin))
        return loaded

    # -- resolution ---------------------------------------------------------------
    def _build_tables(self) -> dict[str, dict[str, PluginEntry]]:
        tables: dict[str, dict[str, PluginEntry]] = {kind: {} for kind in hookspecs.KINDS}
        for kind, hook_name in hookspecs.KINDS.items():
            hook = getattr(self._pm.hook, hook_name)
            # Call each implementation on its own so that one raising hook is a
            # warning naming its plugin, and so that every name keeps its origin.
            for impl in hook.get_hookimpls():  # registration order: built-ins first
                origin = self._origins.get(impl.plugin_name, repr(impl.plugin_name))
                try:
                    contributed = impl.function()
                except Exception as exc:  # noqa: BLE001
                    warnings.warn(
                        f"skdefect plugin {origin}: hook {hook_name} raised and is skipped: "
                        f"{type(exc).__name__}: {exc}",
                        PluginWarning,
                        stacklevel=3,
                    )
                    continue
                if contributed is None:
                    continue
                if not hasattr(contributed, "items"):
                    warnings.warn(
                        f"skdefect plugin {origin}: hook {hook_name} must return a mapping "
                        f"name -> factory, got {type(contributed).__name__}; skipped",
                        PluginWarning,
                        stacklevel=3,
                    )
                    continue
                for name, factory in contributed.items():
                    if not isinstance(name, str) or not callable(factory):
                        warnings.warn(
                            f"skdefect plugin {origin}: {kind} entry {name!r} is not "
                            f"a str -> callable pair; skipped",
                            PluginWarning,
                            stacklevel=3,
                        )
                        continue
                    if name in tables[kind]:
                        first = tables[kind][name].origin
                        raise PluginConflictError(
                            f"{kind} name {name!r} is registered twice: by {first} and by {origin}. "
                            f"Uninstall or rename one of them."
                        )
                    tables[kind][name] = PluginEntry(name, kind, factory, origin)
        return tables

    @property
    def tables(self) -> dict[str, dict[str, PluginEntry]]:
        with self._lock:
            if self._tables is None:
                self._tables = self._build_tables()
            return self._tables

    def names(self, kind: str) -> list[str]:
        """Sorted names registered for ``kind`` ("loss", "sampler" or "backbone")."""
        return sorted(self._table(kind))

    def _table(self, kind: str) -> dict[str, PluginEntry]:
        if kind not in hookspecs.KINDS:
            raise ValueError(f"kind must be one of {sorted(hookspecs.KINDS)}, got {kind!r}")
        return self.tables[kind]

    def get(self, kind: str, name: str) -> PluginEntry:
        """The entry registered as ``name`` for ``kind``, or a ValueError listing the names."""
        if not isinstance(name, str):
            raise TypeError(f"{kind} must be given by name (a str), got {type(name).__name__}")
        table = self._table(kind)
        if name not in table:
            raise ValueError(
                f"unknown {kind} {name!r}; available {'losses' if kind == 'loss' else kind + 's'}: "
                f"{', '.join(sorted(table)) or '(none)'}"
            )
        return table[name]

    def __iter__(self) -> Iterator[PluginEntry]:
        for kind in hookspecs.KINDS:
            yield from (self.tables[kind][n] for n in sorted(self.tables[kind]))


_MANAGER: SkdefectPluginManager | None = None
_MANAGER_LOCK = threading.Lock()


def get_plugin_manager() -> SkdefectPluginManager:
    """The process-wide manager, created (and entry points loaded) on first use."""
    global _MANAGER
    with _MANAGER_LOCK:
        if _MANAGER is None:
            _MANAGER = SkdefectPluginManager()
        return _MANAGER


def get_loss(name: str) -> Callable[..., Any]:
    """The loss factory registered as ``name`` (e.g. ``get_loss("concentrated")``)."""
    return get_plugin_manager().get("loss", name).factory


def get_sampler(name: str) -> Callable[..., Any]:
    """The sampler factory registered as ``name``."""
    return get_plugin_manager().get("sampler", name).factory


def get_backbone(name: str) -> Callable[..., Any]:
    """The network factory registered as ``name``."""
    return get_plugin_manager().get("backbone", name).factory


def list_plugins() -> list[PluginEntry]:
    """Every registered name, by kind then name."""
    return list(get_plugin_manager())
