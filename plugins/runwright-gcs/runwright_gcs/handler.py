"""``GCSResultHandler``: cloudpickled results as write-once objects in a GCS bucket.

* A handler is plain data (``bucket``, ``prefix``, ``project``): constructing, pickling,
  serializing or deserializing it never imports the Google libraries or touches the
  network. The client is built on the first read or write (:mod:`runwright_gcs.client`).
* Keys are ``<prefix>/<uuid4 hex>.rwr``; the prefix is validated so user input can never
  produce ``..`` segments, absolute keys or empty segments.
* Uploads use ``if_generation_match=0``: an object is created once and never overwritten,
  and a retried upload cannot replace a different result. GCS makes an object visible
  only when its upload completes, so a killed writer leaves nothing half-written.
* Objects carry the same header as runwright-local's files (magic, version, length,
  CRC-32), checked before unpickling, so foreign or damaged objects are reported, never
  unpickled.
* Every failure is a :class:`ResultHandlerError` naming the ``gs://`` URI, the cause and
  what to do.
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from typing import TYPE_CHECKING, Any, ClassVar

from runwright.config import ConfigError, get_config
from runwright.engine.result_framing import frame_header, pickle_result, unpickle_framed
from runwright.engine.result_handlers import ResultHandler, ResultHandlerError, validate_prefix
from runwright_gcs.client import (
    ClientSettings,
    CredentialsError,
    current_settings,
    get_client,
)

if TYPE_CHECKING:
    from google.cloud import storage  # type: ignore[import-untyped]

#: The ``[plugins.gcs]`` table and its defaults ("" means unset).
CONFIG_DEFAULTS: dict[str, Any] = {"bucket": "", "prefix": "", "project": "", "credentials": "", "timeout": 60.0}
RESULT_SUFFIX = ".rwr"

_BUCKET = re.compile(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]\Z")


def validate_bucket(bucket: str) -> str:
    """``bucket`` if it is a syntactically valid bucket name; ValueError otherwise."""
    if not _BUCKET.match(bucket):
        raise ValueError(
            f"Invalid GCS bucket name {bucket!r}: use 3-222 lowercase letters, digits, '-', '_' "
            "and '.', starting and ending with a letter or digit (give the name, not a gs:// URI)"
        )
    return bucket


def parse_gs_uri(uri: str) -> tuple[str, str]:
    """``(bucket, key)`` of ``gs://bucket/key``; ResultHandlerError naming ``uri`` otherwise."""
    if not uri.startswith("gs://"):
        raise ResultHandlerError(f"Cannot read {uri!r}: GCSResultHandler locations are gs://bucket/key URIs")
    bucket, _, key = uri[len("gs://") :].partition("/")
    if not bucket or not key:
        raise ResultHandlerError(f"Cannot read {uri!r}: a GCS result URI needs a bucket and a key (gs://bucket/key)")
    return bucket, key


class GCSResultHandler(ResultHandler):
    """Stores each result as a cloudpickled object in a GCS bucket; locations are ``gs://`` URIs.

    :param bucket: the bucket to write to (not a URI). ``None`` means ``[plugins.gcs] bucket``.
    :param prefix: key prefix (``"etl/daily"``); ``None`` means ``[plugins.gcs] prefix``,
        ``""`` no prefix.
    :param project: the Google Cloud project; ``None`` means ``[plugins.gcs] project``, else
        the credentials' project.

    Credentials come from the standard Google environment or ``[plugins.gcs] credentials``;
    ``STORAGE_EMULATOR_HOST`` selects an emulator (see :mod:`runwright_gcs.client`).
    """

    handler_name: ClassVar[str] = "gcs"
    uri_schemes: ClassVar[tuple[str, ...]] = ("gs",)

    def __init__(self, bucket: str | None = None, prefix: str | None = None, project: str | None = None) -> None:
        self.bucket = validate_bucket(bucket) if bucket is not None else None
        self.prefix = validate_prefix(prefix) if prefix is not None else None
        self.project = project

    @classmethod
    def from_uri(cls, uri: str) -> GCSResultHandler:
        """A handler for the bucket named in ``gs://bucket/key``."""
        return cls(bucket=parse_gs_uri(uri)[0])

    # -- settings --------------------------------------------------------------------------
    def _config(self) -> dict[str, Any]:
        return get_config().plugin_section("gcs", CONFIG_DEFAULTS)

    def _client_settings(self, config: dict[str, Any]) -> ClientSettings:
        return current_settings(self.project or config["project"], config["credentials"])

    def _client(self, settings: ClientSettings, uri: str, action: str) -> storage.Client:
        try:
            return get_client(settings)
        except CredentialsError as exc:
            raise ResultHandlerError(f"Cannot {action} {uri}: {exc}") from exc

    def _new_key(self, config: dict[str, Any]) -> str:
        if self.prefix is not None:
            prefix = self.prefix
        else:
            try:
                prefix = validate_prefix(str(config["prefix"] or ""))
            except ValueError as exc:
                raise ConfigError(f"[plugins.gcs] prefix: {exc}") from None
        name = uuid.uuid4().hex + RESULT_SUFFIX
        return f"{prefix}/{name}" if prefix else name

    # -- writing ---------------------------------------------------------------------------
    def write(self, result: Any) -> str:
        """Pickle ``result`` and upload it as a new object; return its ``gs://`` URI."""
        payload = pickle_result(result, "GCSResultHandler")
        config = self._config()
        bucket_name = self.bucket or config["bucket"]
        if not bucket_name:
            raise ResultHandlerError(
                "GCSResultHandler has no bucket to write to: pass GCSResultHandler(bucket=...) or "
                "set [plugins.gcs] bucket in the runwright config"
            )
        key = self._new_key(config)
        uri = f"gs://{bucket_name}/{key}"
        settings = self._client_settings(config)
        blob = self._client(settings, uri, "write").bucket(bucket_name).blob(key)
        data = frame_header(payload) + payload
        timeout = float(config["timeout"])
        try:
            blob.upload_from_string(
                data,
                content_type="application/octet-stream",
                if_generation_match=0,
                timeout=timeout,
                retry=_retry(timeout),
            )
        except Exception as exc:
            if _is(exc, "PreconditionFailed") and _same_object(blob, data):
                return uri  # a retried upload whose first attempt had in fact succeeded
            raise ResultHandlerError(self._explain(exc, uri, bucket_name, settings, "write")) from exc
        return uri

    # -- reading ---------------------------------------------------------------------------
    def read(self, loc: str) -> Any:
        """Download and unpickle the result at ``loc`` (``gs://bucket/key``)."""
        bucket_name, key = parse_gs_uri(loc)
        config = self._config()
        settings = self._client_settings(config)
        timeout = float(config["timeout"])
        blob = self._client(settings, loc, "read").bucket(bucket_name).blob(key)
        try:
            data = blob.download_as_bytes(timeout=timeout, retry=_retry(timeout))
        except Exception as exc:
            raise ResultHandlerError(self._explain(exc, loc, bucket_name, settings, "read")) from exc
        return unpickle_framed(data, loc, "object")

    # -- errors ----------------------------------------------------------------------------
    def _explain(self, exc: Exception, uri: str, bucket_name: str, settings: ClientSettings, action: str) -> str:
        where = settings.describe()
        if _is(exc, "NotFound"):
            if action == "write" or not _bucket_exists(get_client(settings), bucket_name):
                return (
                    f"Cannot {action} {uri}: bucket {bucket_name!r} does not exist (on {where}). "
                    "Create it, or fix the bucket name / [plugins.gcs] bucket."
                )
            return f"No result at {uri}: the object does not exist (on {where}). Re-run the task that produced it."
        if _is(exc, "PreconditionFailed"):
            return f"Cannot write {uri}: an object already exists there and results are write-once."
        if _is(exc, "Forbidden") or _is(exc, "Unauthorized"):
            return (
                f"Cannot {action} {uri}: permission denied by {where} ({_short(exc)}). Give the "
                f"credentials' account access to bucket {bucket_name!r} (roles/storage.objectUser)."
            )
        if type(exc).__module__.startswith("google.auth"):
            return (
                f"Cannot {action} {uri}: the credentials were refused ({_short(exc)}; using {where}). "
                "Check GOOGLE_APPLICATION_CREDENTIALS / [plugins.gcs] credentials."
            )
        return f"Cannot {action} {uri}: {_short(exc)} (using {where})."


def _retry(timeout: float) -> Any:
    from google.cloud.storage.retry import DEFAULT_RETRY  # type: ignore[import-untyped]

    return DEFAULT_RETRY.with_timeout(timeout)


def _is(exc: BaseException, name: str) -> bool:
    """``exc`` is the google.api_core exception ``name`` (checked without importing it)."""
    return any(cls.__name__ == name and cls.__module__.startswith("google.") for cls in type(exc).__mro__)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _bucket_exists(client: storage.Client, bucket_name: str) -> bool:
    try:
        return bool(client.bucket(bucket_name).exists())
    except Exception:  # noqa: BLE001 - only used to word an error message
        return True


def _same_object(blob: storage.Blob, data: bytes) -> bool:
    """The existing object at ``blob`` holds exactly ``data`` (an earlier attempt of ours)."""
    try:
        blob.reload()
    except Exception:  # noqa: BLE001 - then it is not provably ours
        return False
    expected = base64.b64encode(hashlib.md5(data).digest()).decode()
    return blob.size == len(data) and blob.md5_hash == expected
