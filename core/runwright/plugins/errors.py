"""The plugin host's errors: a plugin that raised, and a name no installed plugin provides."""

from __future__ import annotations


class PluginError(Exception):
    """A plugin raised inside a hook; the message names the plugin and the hook."""

    def __init__(self, plugin: str, hook: str, error: BaseException) -> None:
        super().__init__(f"Plugin {plugin!r} raised in {hook}: {error!r}")
        self.plugin = plugin
        self.hook = hook
        self.error = error


class UnknownNameError(LookupError):
    """A name (result handler, executor, cache validator) that no installed plugin provides."""
