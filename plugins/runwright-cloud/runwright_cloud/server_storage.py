"""The built-in ``server`` storage: the runwright server keeps the flow file's source.

``store`` uploads the file's bytes to ``PUT /storage/{sha256}`` (content-addressed: storing
the same source again uploads nothing new and gives the same reference) and returns
``{"digest": <sha256 hex>, "filename": <the file's name>}``. ``fetch`` returns
``cache_dir/server/<digest>/<filename>``, downloading it first unless a file with exactly
those bytes is already there; the download is checked against the digest and written
atomically, so an agent on another machine needs nothing but the server's address, and
two agents fetching the same code at once never see half a file.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runwright.storage import Storage, StorageError

NAME = "server"
_DIGEST = re.compile(r"[0-9a-f]{64}")
#: the file name of fetched code whose reference names none it can use
DEFAULT_FILENAME = "flow.py"


def _safe_filename(value: Any) -> str:
    """The reference's file name as a plain name inside the cache directory (no directories,
    nothing hidden): a reference is data from the server, never a path to trust."""
    name = Path(str(value or "")).name if isinstance(value, str) else ""
    if not name or name.startswith(".") or len(name) > 200:
        return DEFAULT_FILENAME
    return name


def _has_bytes(path: Path, digest: str) -> bool:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest() == digest
    except OSError:
        return False


class ServerStorage(Storage):
    """Flow source kept by the runwright server (``storage_blobs``), cached by digest."""

    name = NAME

    def store(self, path: Path, client: Any) -> dict[str, Any]:
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise StorageError(f"Cannot read the flow file {path}: {exc.strerror or exc}") from exc
        digest = hashlib.sha256(data).hexdigest()
        client.put_stored_code(digest, data)
        return {"digest": digest, "filename": path.name}

    def fetch(self, ref: Mapping[str, Any], client: Any, cache_dir: Path) -> Path:
        digest = ref.get("digest") if isinstance(ref, Mapping) else None
        if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
            raise StorageError(
                f"The deployment's server storage reference {dict(ref) if isinstance(ref, Mapping) else ref!r} "
                "names no sha256 digest: deploy the flow again with `runwright deploy`"
            )
        target_dir = Path(cache_dir) / NAME / digest
        target = target_dir / _safe_filename(ref.get("filename"))
        if _has_bytes(target, digest):
            return target
        from runwright_cloud.errors import NotFoundError

        try:
            data = client.get_stored_code(digest)
        except NotFoundError:
            raise StorageError(
                f"The runwright server has no stored code {digest[:12]}... for this tenant: "
                "deploy the flow again with `runwright deploy`"
            ) from None
        actual = hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise StorageError(f"The code fetched for {digest[:12]}... has the sha256 {actual[:12]}...: not using it")
        target_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target_dir, prefix=".fetch-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target
