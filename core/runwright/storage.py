"""Storages: where a deployment's flow code travels from ``runwright deploy`` to an agent.

A storage is an object registered by a plugin (``runwright_register_storages``) under its
``name``, like a backend. ``runwright deploy FILE --storage NAME`` calls :meth:`Storage.store`
with the flow file and gets back a *reference*, a small JSON object the server keeps with the
deployment; an agent that claims one of the deployment's runs calls :meth:`Storage.fetch` with
that reference and gets back a local path of the flow file, cached under
:func:`code_cache_dir` by content hash so the same code is fetched once per machine.

The core registers none; runwright-cloud registers ``server`` (the server itself keeps the
flow file's source, content-addressed). A plugin can add others (GCS, git)::

    class SharedDirectory(Storage):
        name = "shared-dir"

        def store(self, path, client):
            target = Path("/mnt/flows") / path.name
            shutil.copyfile(path, target)
            return {"path": str(target)}

        def fetch(self, ref, client, cache_dir):
            return Path(ref["path"])

    @hookimpl
    def runwright_register_storages(register):
        register(SharedDirectory())
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

__all__ = ["Storage", "StorageError", "code_cache_dir"]


class StorageError(Exception):
    """Flow code could not be stored or fetched; the message says what and what to do."""


def code_cache_dir() -> Path:
    """``~/.runwright/code/``: where agents keep fetched flow code (the ``cache_dir`` they
    pass to :meth:`Storage.fetch`)."""
    return Path.home() / ".runwright" / "code"


class Storage:
    """Base class of storages. Subclass it, set :attr:`name`, implement :meth:`store` and
    :meth:`fetch`, and register an instance with ``runwright_register_storages``."""

    #: The registered name (``runwright deploy --storage NAME``).
    name: ClassVar[str] = ""

    def store(self, path: Path, client: Any) -> dict[str, Any]:
        """Keep the flow file ``path`` and return its reference: a JSON object (at most a
        few KB) from which :meth:`fetch` finds this exact code again. Storing the same code
        twice must give the same reference (re-deploying unchanged code changes nothing).

        :param client: the deploying process's :class:`runwright_cloud.client.Client` (a
            storage that keeps code elsewhere may ignore it).
        """
        raise NotImplementedError

    def fetch(self, ref: Mapping[str, Any], client: Any, cache_dir: Path) -> Path:
        """The local path of the flow file that ``ref`` names, fetched into ``cache_dir``
        (keyed by content hash, so a second call costs no download). Raise
        :class:`StorageError` naming the problem when the code cannot be had."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} storage {self.name!r}>"
