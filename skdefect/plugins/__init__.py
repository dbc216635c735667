"""skdefect's plugin layer: :mod:`.hookspecs` is the contract, :mod:`.manager` the one manager."""

from .hookspecs import ENTRY_POINT_GROUP, hookimpl, hookspec
from .manager import (
    PluginConflictError,
    PluginEntry,
    PluginWarning,
    SkdefectPluginManager,
    call_with_accepted,
    get_backbone,
    get_loss,
    get_plugin_manager,
    get_sampler,
    ignored_arguments,
    list_plugins,
    needs_features,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "hookimpl",
    "hookspec",
    "PluginConflictError",
    "PluginEntry",
    "PluginWarning",
    "SkdefectPluginManager",
    "call_with_accepted",
    "get_backbone",
    "get_loss",
    "ignored_arguments",
    "needs_features",
    "get_plugin_manager",
    "get_sampler",
    "list_plugins",
]
