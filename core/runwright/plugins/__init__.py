"""The plugin host, one concern per module:

* :mod:`~runwright.plugins.manager`: the manager, loading built-ins and entry points,
  listing plugins, looking names up;
* :mod:`~runwright.plugins.dispatch`: the hook dispatcher every hook call goes through;
* :mod:`~runwright.plugins.registries`: the registries filled by registration hooks;
* :mod:`~runwright.plugins.results`: the result store (result write/read hooks);
* :mod:`~runwright.plugins.process`: the process-wide manager;
* :mod:`~runwright.plugins.errors`: PluginError and UnknownNameError.
"""

from runwright.plugins.errors import PluginError, UnknownNameError
from runwright.plugins.manager import (
    BUILTIN_PLUGINS,
    DISABLE_AUTOLOAD_ENV,
    ENTRY_POINT_GROUP,
    PluginInfo,
    RunwrightPluginManager,
    build_plugin_manager,
)
from runwright.plugins.process import get_plugin_manager, set_plugin_manager, use_plugin_manager
from runwright.plugins.results import ResultStore

__all__ = [
    "BUILTIN_PLUGINS",
    "DISABLE_AUTOLOAD_ENV",
    "ENTRY_POINT_GROUP",
    "PluginError",
    "PluginInfo",
    "ResultStore",
    "RunwrightPluginManager",
    "UnknownNameError",
    "build_plugin_manager",
    "get_plugin_manager",
    "set_plugin_manager",
    "use_plugin_manager",
]
