"""``LocalResultHandler``: cloudpickled results in files, written atomically.

Why each step of a write exists:

* the value is pickled *before* any file is created, so an unpicklable value leaves nothing
  behind;
* the bytes go to a temporary file (``.rw-tmp-*.partial``) in the target directory, are
  flushed and fsynced, and only then renamed to their final name: a rename within one
  directory is atomic, so a reader sees either no file or the whole file, and a crash (even
  SIGKILL or power loss) can leave at most a temporary file that is never a result;
* the directory is fsynced after the rename so the new name itself survives a power loss;
* every file starts with a header (:mod:`runwright.engine.result_framing`: magic, format version,
  length, CRC-32) checked before unpickling, so a truncated or damaged file is reported,
  never unpickled.

File names are uuid4 hex strings. The only user-controlled part of a path is the optional
``prefix``, which is validated so that it can never leave ``dir``. Reading is confined the
same way: a location outside the handler's directory (after resolving ``..`` and symbolic
links) is refused, and the result file itself is never read through a link. The results
directory is created readable by its owner only (0700), each file 0600.
"""

from __future__ import annotations

import errno
import functools
import os
import tempfile
import uuid
import weakref
from contextlib import suppress
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlparse
from urllib.request import url2pathname

from runwright.config import ConfigError, get_config
from runwright.engine.result_framing import frame_header, framed_size, pickle_result, unpickle_framed
from runwright.engine.result_handlers import ResultHandler, ResultHandlerError, validate_prefix

#: The ``[plugins.local]`` table and its defaults.
CONFIG_DEFAULTS: dict[str, Any] = {"dir": "~/.runwright/results", "prefix": ""}
RESULT_SUFFIX = ".rwr"
TEMP_PREFIX = ".rw-tmp-"
TEMP_SUFFIX = ".partial"



def path_from_location(location: str) -> Path:
    """The absolute path named by a ``file://`` URI (or a bare absolute path)."""
    return Path(_path_string(location))


def _path_string(location: str) -> str:
    if os.sep == "/" and location.startswith("file:///") and not any(c in location for c in "%?#"):
        return location[7:]  # what this handler writes: no escapes to decode (cached reads are hot)
    if location.startswith("file:"):
        parsed = urlparse(location)
        if parsed.netloc not in ("", "localhost"):
            raise ResultHandlerError(
                f"Cannot read {location}: file URIs on another host ({parsed.netloc!r}) are not "
                "supported; mount the directory locally and use file:///path"
            )
        return url2pathname(parsed.path)
    if os.path.isabs(location):
        return location
    raise ResultHandlerError(
        f"Cannot read {location!r}: LocalResultHandler locations are file:// URIs (or absolute paths)"
    )


def _fsync_directory(directory: str) -> None:
    """Make a rename in ``directory`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class LocalResultHandler(ResultHandler):
    """Stores each result as a cloudpickled file under ``dir``; locations are ``file://`` URIs.

    :param dir: the directory to write to. ``None`` means ``[plugins.local] dir`` from the
        configuration (default ``~/.runwright/results``), looked up at each write, so one
        handler follows configuration changes. Reading never depends on it: the URI names
        the file.
    :param prefix: an optional sub-path of ``dir`` (``"etl/daily"``), validated so that it
        cannot escape ``dir``. ``None`` means ``[plugins.local] prefix`` (default none);
        ``""`` means no prefix whatever the configuration says.

    Constructing the handler touches no file; directories are created on first write.
    Files are created with mode 0600 (results may hold sensitive data) and never deleted.
    """

    handler_name: ClassVar[str] = "local"
    uri_schemes: ClassVar[tuple[str, ...]] = ("file",)

    def __init__(self, dir: str | os.PathLike[str] | None = None, prefix: str | None = None) -> None:
        self.dir = os.path.abspath(os.path.expanduser(os.fspath(dir))) if dir is not None else None
        self.prefix = validate_prefix(prefix) if prefix is not None else None
        self._read_root_memo: tuple[weakref.ref[Any], str] | None = None

    @classmethod
    def from_uri(cls, uri: str) -> LocalResultHandler:
        """A handler for the directory holding ``uri`` (reading needs nothing else)."""
        return cls(dir=str(path_from_location(uri).parent))

    # -- writing ---------------------------------------------------------------------------
    def target_directory(self) -> str:
        """The absolute directory the next result is written to."""
        if self.dir is not None and self.prefix is not None:
            return os.path.join(self.dir, self.prefix) if self.prefix else self.dir
        settings = get_config().plugin_section("local", CONFIG_DEFAULTS)
        base = self.dir or os.path.abspath(os.path.expanduser(str(settings["dir"])))
        if self.prefix is not None:
            prefix = self.prefix
        else:
            try:
                prefix = validate_prefix(str(settings["prefix"] or ""))
            except ValueError as exc:
                raise ConfigError(f"[plugins.local] prefix: {exc}") from None
        return os.path.join(base, prefix) if prefix else base

    def write(self, result: Any) -> str:
        """Pickle ``result`` and write it atomically; return its ``file://`` URI."""
        payload = pickle_result(result, "LocalResultHandler")
        directory = self.target_directory()
        final_path = os.path.join(directory, uuid.uuid4().hex + RESULT_SUFFIX)
        uri = Path(final_path).as_uri()
        try:
            self._write_atomically(directory, final_path, frame_header(payload), payload)
        except OSError as exc:
            raise ResultHandlerError(
                f"Could not write the result to {uri}: {exc.strerror or exc!r}. Check that "
                f"{directory} is writable and has free space, or set [plugins.local] dir."
            ) from exc
        return uri

    @staticmethod
    def _write_atomically(directory: str, final_path: str, header: bytes, payload: bytes) -> None:
        try:
            fd, temp_path = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX, dir=directory)
        except FileNotFoundError:
            os.makedirs(directory, mode=0o700, exist_ok=True)
            fd, temp_path = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX, dir=directory)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(header)
                fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(temp_path, final_path)
        except BaseException:
            with suppress(OSError):
                os.unlink(temp_path)
            raise
        _fsync_directory(directory)

    # -- reading ---------------------------------------------------------------------------
    def read_root(self) -> str:
        """The directory this handler reads from: ``dir``, else ``[plugins.local] dir``
        (looked up once per configuration: a cached re-run reads a result per task)."""
        if self.dir is not None:
            return self.dir
        config = get_config()
        memo = self._read_root_memo
        if memo is not None and memo[0]() is config:
            return memo[1]
        settings = config.plugin_section("local", CONFIG_DEFAULTS)
        root = os.path.abspath(os.path.expanduser(str(settings["dir"])))
        self._read_root_memo = (weakref.ref(config), root)
        return root

    def __getstate__(self) -> dict[str, Any]:
        state = dict(vars(self))
        state["_read_root_memo"] = None  # a weak reference to this process's configuration
        return state

    def read(self, loc: str) -> Any:
        """Load the result at ``loc`` (a ``file://`` URI); ResultHandlerError names ``loc``.

        ``loc`` must lie inside :meth:`read_root` once ``..`` and symbolic links are
        resolved, and must not itself be a symbolic link: a state or cache entry naming
        ``D/../elsewhere`` never makes the handler read a file it did not write.
        """
        path = _path_string(loc)
        directory, name = os.path.split(path)
        if name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX):
            raise ResultHandlerError(
                f"{loc} is a temporary file left by an interrupted write, not a result; it can be deleted"
            )
        root = self.read_root()
        real_directory, real_root = _real_directory(directory), _real_directory(root)
        if real_directory != real_root and not real_directory.startswith(real_root + os.sep):
            raise ResultHandlerError(
                f"Refusing to read {loc}: it lies outside this handler's directory {root} "
                f"(it resolves to {os.path.join(real_directory, name)}). A LocalResultHandler reads "
                "only results under its own dir; use a handler for that directory "
                "(LocalResultHandler(dir=...)) if the file is a result you trust."
            )
        try:
            data = _read_file(path)
        except FileNotFoundError:
            raise ResultHandlerError(
                f"No result at {loc}: the file does not exist. It was deleted or moved, or it was "
                "written on another machine (local results are readable only where their directory "
                "is mounted). Re-run the task that produced it."
            ) from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise ResultHandlerError(
                    f"Refusing to read {loc}: it is a symbolic link, and results are never read "
                    "through links (a link can point outside the results directory)"
                ) from None
            raise ResultHandlerError(f"Could not read the result at {loc}: {exc.strerror or exc!r}") from exc
        return unpickle_framed(data, loc, "result file")


@functools.lru_cache(maxsize=1024)
def _real_directory(directory: str) -> str:
    """``directory`` with ``..`` and symbolic links resolved (memoized: a cached re-run reads
    every result of a directory, and resolving costs a system call per path component)."""
    return os.path.realpath(directory)


def _read_file(path: str) -> bytes:
    """The whole file, with plain system calls (cheaper than ``open().read()``: a cached re-run
    reads one small file per task). One ``read`` suffices when it comes back short of the
    buffer (the end of the file) with every byte the frame header announces; otherwise the
    rest is read up to the end of the file."""
    fd = os.open(path, _READ_FLAGS)
    try:
        data = os.read(fd, _FIRST_READ)
        if len(data) < _FIRST_READ and len(data) >= (framed_size(data) or 0):
            return data
        parts = [data]
        while chunk := os.read(fd, 1 << 20):
            parts.append(chunk)
    finally:
        os.close(fd)
    return b"".join(parts)


_FIRST_READ = 1 << 16
#: O_NOFOLLOW: the result file itself is never a symbolic link (ELOOP otherwise)
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
