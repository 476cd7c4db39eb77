"""HTTP client of the runwright server, with the operations the cloud runners use.

One :class:`requests.Session` per thread (keep-alive), bearer-token auth, typed errors
(:mod:`runwright_cloud.errors`) and retries with exponential backoff:

- every call is retried when the connection could not even be opened (nothing was sent);
- idempotent calls (reads, heartbeats, get-or-create, flow registration, result upload) are
  also retried after a reset, a timeout or a 5xx;
- state writes are retried too, because a retried write can be recognised: if the retry gets
  a 409 whose current version is ``version + 1`` and whose current state equals the state we
  sent, our earlier attempt was applied and the write counts as a success;
- creating a flow run and writing logs are not retried once they may have reached the server.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any

import requests
from requests.auth import AuthBase
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError

from runwright.engine.state import State
from runwright_cloud._config import config_value
from runwright_cloud.errors import (
    AuthorizationError,
    ClientError,
    LeaseLost,
    NotFoundError,
    ServerError,
    ServerUnreachable,
    VersionConflict,
)
from runwright_cloud.received_states import state_from_server
from runwright_cloud.state_bodies import EncodedState

DEFAULT_API = "http://127.0.0.1:4200"
API_PREFIX = "/api/v1"
_JSON_HEADERS = {"Content-Type": "application/json"}
#: a batch of writes whose answer may be only their count when every one applied (RFC 7240)
_BRIEF_JSON_HEADERS = {**_JSON_HEADERS, "Prefer": "return=minimal"}
_NO_RESULT = {"type": "NoResultType"}
#: the longest pause between two attempts of a request retried for ``retry_for`` seconds
_MAX_RETRY_DELAY = 2.0


@dataclass(frozen=True)
class TaskRunInfo:
    """A task run as the runners need it: ``state`` is its current state, a runwright
    ``State`` (an :class:`~runwright_cloud.received_states.UnknownState` when this process
    cannot rebuild it), ``serialized_state`` the dict the server holds."""

    id: str
    task_slug: str
    map_index: int
    version: int
    serialized_state: dict[str, Any]
    heartbeat: datetime | None = None
    state: State = field(init=False, repr=False, compare=False)

    def __getattr__(self, name: str) -> Any:
        # ``state`` is rebuilt on first use: a page of a map's children is a thousand runs,
        # most of them the Pending the server just created, which the runner never reads
        if name == "state":
            state = state_from_server(self.serialized_state)
            object.__setattr__(self, "state", state)
            return state
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def is_new(self) -> bool:
        """True for a run still in the state the server creates: Pending, nothing cached
        (restoring it gives None: the run starts afresh), without rebuilding the state."""
        data = self.serialized_state
        return (
            type(data) is dict
            and data.get("type") == "Pending"
            and not data.get("cached_inputs")
            and data.get("_result") in (None, _NO_RESULT)
        )


@dataclass(frozen=True)
class FlowRunInfo:
    """A flow run with its parent task runs (map index -1); ``state`` and ``serialized_state``
    as for :class:`TaskRunInfo`."""

    id: str
    flow_id: str
    flow_name: str
    parameters: dict[str, Any]
    context: dict[str, Any]
    version: int
    scheduled_start_time: datetime
    serialized_state: dict[str, Any]
    task_runs: list[TaskRunInfo] = field(default_factory=list)
    heartbeat: datetime | None = None
    #: some runner holds the flow run's lease (its last state write carried a runner token)
    leased: bool = False
    #: who holds the lease, as its runner said (``"host:pid"``), when known
    lease_holder: str | None = None
    #: the agent that claimed the run (orchestration), if one did
    agent_id: str | None = None
    state: State = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", state_from_server(self.serialized_state))


def _task_run_info(data: Mapping[str, Any]) -> TaskRunInfo:
    # what the frozen dataclass's __init__ does, without its six object.__setattr__ calls
    # (a page of a map's children is a thousand of them)
    info = object.__new__(TaskRunInfo)
    heartbeat = data.get("heartbeat")
    info.__dict__.update(
        id=data["id"],
        task_slug=data["task_slug"],
        map_index=data["map_index"],
        version=data["version"],
        serialized_state=data["state"],
        heartbeat=datetime.fromisoformat(heartbeat) if heartbeat else None,
    )
    return info


#: the state dicts a write is sent with as they are (an EncodedState is a dict with its text)
_PLAIN_STATES = (dict, EncodedState)


def _write_body(write: Mapping[str, Any]) -> dict[str, Any]:
    """A batch write as sent: its run, version and state, and the child it creates (if any)."""
    state = write["state"]
    body = {
        "task_run_id": write["task_run_id"],
        "version": write["version"],
        "state": state if type(state) in _PLAIN_STATES else dict(state),
    }
    if write.get("task_slug") is not None:
        body["task_slug"], body["map_index"] = write["task_slug"], write["map_index"]
    return body


def _encode_states_body(items: list[dict[str, Any]], body: dict[str, Any]) -> bytes:
    """``body`` (from :meth:`Client._states_body`) as :func:`_encode` gives it, joined from
    the texts the writer's states carry (:class:`~runwright_cloud.state_bodies.EncodedState`)
    where it can: a batch of a million-child map is mostly such states, and encoding their
    dicts again cost the writer more than building them."""
    parts = []
    for item in items:
        state = item["state"]
        run_id, version = item["task_run_id"], item["version"]
        state_text = getattr(state, "text", None) if type(state) is EncodedState else None
        if (
            state_text is None
            or len(state) != 3
            or type(run_id) is not str
            or type(version) is not int
            or (len(item) != 3 and (len(item) != 5 or type(item.get("map_index")) is not int or type(item.get("task_slug")) is not str))
        ):
            parts.append(_encode(item, "POST /task_run_states").decode("ascii"))
            continue
        text = f'{{"task_run_id":{encode_basestring_ascii(run_id)},"version":{version},"state":{state_text}'
        if len(item) == 5:
            text += f',"task_slug":{encode_basestring_ascii(item["task_slug"])},"map_index":{item["map_index"]}'
        parts.append(text + "}")
    head = '{"writes":[' + ",".join(parts) + "]"
    lease = body.get("lease")
    if lease is not None:
        head += ',"lease":' + _encode(lease, "POST /task_run_states").decode("ascii")
    results = body.get("results")
    if results is not None:
        # {"key", "data"} of str each (the writer's inline results): joined as json.dumps writes them
        head += ',"results":['
        head += ",".join(
            f'{{"key":{encode_basestring_ascii(r["key"])},"data":{encode_basestring_ascii(r["data"])}}}'
            if len(r) == 2 and type(r.get("key")) is str and type(r.get("data")) is str and next(iter(r)) == "key"
            else _encode(r, "POST /task_run_states").decode("ascii")
            for r in results
        )
        head += "]"
    return (head + "}").encode("ascii")


def _parse_optional(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _iso(value: datetime | str) -> str:
    if isinstance(value, str):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.isoformat()


def _never_sent(exc: requests.RequestException) -> bool:
    """True when the connection was never established, so the request cannot have arrived."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = exc.args[0] if exc.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    return isinstance(reason, NewConnectionError | ConnectTimeoutError)


def _encode(body: Any, what: str) -> bytes:
    """``body`` as compact JSON (requests would add a space after every separator)."""
    try:
        return json.dumps(body, separators=(",", ":"), allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise ClientError(f"{what} failed: the body is not JSON ({exc})") from exc


class _BearerToken(AuthBase):
    """The API token as the session's auth: requests then never looks for ``~/.netrc``
    credentials for the server (once per request, and they would replace the token)."""

    def __init__(self, token: str | None) -> None:
        self.header = f"Bearer {token}"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = self.header
        return request


def _normalised(state: Mapping[str, Any]) -> Any:
    """The state as the server will echo it back (a JSON round trip)."""
    return json.loads(json.dumps(state))


class Client:
    """Talks to ``api`` (a root URL such as ``http://127.0.0.1:4200``) with ``api_token``.

    Both default to the config keys ``[cloud] api`` and ``[cloud] api_token`` (or the
    environment variables ``RUNWRIGHT__CLOUD__API`` / ``RUNWRIGHT__CLOUD__API_TOKEN``).
    Safe to share between threads and to pickle (sessions are per thread and not pickled).
    """

    def __init__(
        self,
        api: str | None = None,
        api_token: str | None = None,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.2,
    ) -> None:
        self.api = str(api or config_value("cloud", "api") or DEFAULT_API).rstrip("/")
        token = api_token if api_token is not None else config_value("cloud", "api_token")
        self.api_token: str | None = str(token) if token else None
        self.timeout = timeout
        self.retries = max(0, int(retries))
        self.backoff = backoff
        self._local = threading.local()
        #: the server takes ``flow_hash`` in ``POST /flow_runs`` (False once one did not)
        self._create_by_hash = True
        #: the server can leave a fresh map's children to be created by their first writes
        self._fresh_children = True

    # ------------------------------------------------------------------ plumbing

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_local", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"Client(api={self.api!r})"

    @property
    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.auth = _BearerToken(self.api_token)
            # The environment's proxy and CA-bundle settings for the server, read once: with
            # trust_env, requests reads them again for every request (the whole environment
            # for the proxies, ~1 ms; a batch of a map's states is ~50 ms of server work).
            found = session.merge_environment_settings(self.api + API_PREFIX, {}, None, None, None)
            session.proxies.update(found.get("proxies") or {})
            if self.api.startswith("https:"):  # (plain HTTP verifies nothing: no CA-bundle path to check per request)
                session.verify = found.get("verify", True)
            if found.get("cert") is not None:
                session.cert = found["cert"]
            session.trust_env = False
            session.headers["User-Agent"] = "runwright-cloud-client"
            self._local.session = session
        return session

    def close(self) -> None:
        """Close this thread's session (others close when their threads end)."""
        session = getattr(self._local, "session", None)
        if session is not None:
            session.close()
            self._local.session = None

    def _request(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool,
        json_body: Any = None,
        params: Mapping[str, Any] | None = None,
        data: bytes | None = None,
        retry_for: float = 0.0,
        stream: bool = False,
        json_data: bytes | None = None,
        brief: bool = False,
    ) -> tuple[requests.Response, bool]:
        """Send with retries; return the response and whether an earlier attempt may have landed.

        An idempotent request is retried ``retries`` times with exponential backoff, and then
        on (at most every ``_MAX_RETRY_DELAY`` seconds) until ``retry_for`` seconds have passed."""
        if not self.api_token:
            raise AuthorizationError(
                "No API token: set [cloud] api_token in the config or RUNWRIGHT__CLOUD__API_TOKEN "
                "(create one with `runwright server token create --name NAME`)."
            )
        url = self.api + API_PREFIX + path
        headers = {"Content-Type": "application/octet-stream"} if data is not None else None
        if json_body is not None:
            # encoded here, compactly (requests would add a space after every separator)
            data = _encode(json_body, f"{method} {url}")
            json_body = None
            headers = _JSON_HEADERS
        elif json_data is not None:
            data, headers = json_data, _BRIEF_JSON_HEADERS if brief else _JSON_HEADERS
        maybe_applied = False
        deadline = time.monotonic() + retry_for
        attempt = 0
        while True:
            delay = min(self.backoff * (2**attempt), _MAX_RETRY_DELAY)
            last = attempt >= self.retries and time.monotonic() + delay > deadline
            try:
                response = self._session.request(
                    method,
                    url,
                    json=json_body,
                    params=params,
                    data=data,
                    headers=headers,
                    # a stream is quiet between events (a keep-alive comes every 15 s)
                    timeout=(self.timeout, max(self.timeout, 60.0)) if stream else self.timeout,
                    stream=stream,
                )
            except requests.RequestException as exc:
                if not isinstance(exc, requests.ConnectionError | requests.Timeout):
                    raise ClientError(f"{method} {url} failed: {exc}") from exc
                self.close()  # drop a possibly broken keep-alive connection
                sent = not _never_sent(exc)
                if last or (sent and not idempotent):
                    raise ServerUnreachable(
                        f"Cannot reach the runwright server at {self.api} ({type(exc).__name__}: {exc}) "
                        f"after {attempt + 1} attempt(s). Start it with `runwright server start`, "
                        "or point [cloud] api / RUNWRIGHT__CLOUD__API at a running one."
                    ) from exc
                maybe_applied = maybe_applied or sent
            else:
                if response.status_code < 500 or last or not idempotent:
                    return response, maybe_applied
                maybe_applied = True
            time.sleep(delay)
            attempt += 1

    def _check(self, response: requests.Response) -> requests.Response:
        status = response.status_code
        if status < 400:
            return response
        try:
            body = response.json()
        except ValueError:
            body = {}
        detail = body.get("detail") if isinstance(body, dict) else None
        if isinstance(detail, list):  # a 422: the messages of its validation errors
            detail = "; ".join(str(item.get("msg", item)) if isinstance(item, dict) else str(item) for item in detail)
        where = f"{response.request.method} {response.url}"
        if status == 401:
            raise AuthorizationError(
                f"The runwright server at {self.api} refused the API token ({detail or 'unauthorized'}). "
                "Check [cloud] api_token in the config or RUNWRIGHT__CLOUD__API_TOKEN; create a token "
                "with `runwright server token create --name NAME`.",
                status_code=401,
            )
        if status == 404:
            raise NotFoundError(f"{detail or 'not found'} ({where})", status_code=404)
        if status == 409:
            raise VersionConflict(
                f"{detail or 'version conflict'} ({where})",
                current_version=body.get("current_version"),
                current_state=body.get("current_state"),
            )
        if status >= 500:
            raise ServerError(f"server error {status} for {where}: {response.text[:500]}", status_code=status)
        raise ClientError(f"{status} for {where}: {detail if detail is not None else response.text[:500]}", status)

    def _json(self, method: str, path: str, *, idempotent: bool, **kwargs: Any) -> Any:
        response, _ = self._request(method, path, idempotent=idempotent, **kwargs)
        return self._check(response).json()

    # ------------------------------------------------------------------ flows and runs

    def health(self) -> bool:
        return bool(self._json("GET", "/health", idempotent=True).get("status") == "ok")

    def register_flow(
        self,
        name: str,
        tasks: Iterable[Mapping[str, Any] | str],
        edges: Iterable[Mapping[str, Any] | Sequence[Any]],
        version: str | None = None,
    ) -> str:
        """Register a flow (idempotent: the same structure gives the same id). Returns its id.

        ``tasks`` are ``{"slug", "name"}`` dicts or plain slugs; ``edges`` are
        ``{"upstream", "downstream", "key", "mapped"}`` dicts or ``(upstream, downstream)`` pairs.
        """
        task_list = [{"slug": t, "name": t} if isinstance(t, str) else dict(t) for t in tasks]
        edge_list = [
            dict(e) if isinstance(e, Mapping) else {"upstream": e[0], "downstream": e[1]} for e in edges
        ]
        body = {"name": name, "version": version, "tasks": task_list, "edges": edge_list}
        return str(self._json("POST", "/flows", idempotent=True, json_body=body)["id"])

    def find_flow(
        self,
        name: str,
        tasks: Iterable[Mapping[str, Any] | str],
        edges: Iterable[Mapping[str, Any] | Sequence[Any]],
        version: str | None = None,
    ) -> str | None:
        """The id of the flow registered with exactly this structure (arguments as for
        :meth:`register_flow`), asked by its content hash without sending the structure; None
        when the server has not got it (or is too old to answer): register it then."""
        digest = structure_hash(name, tasks, edges, version)
        response, _ = self._request("GET", f"/flows/by_hash/{digest}", idempotent=True)
        if response.status_code == 404:
            return None
        return str(self._check(response).json()["id"])

    def create_flow_run_of_structure(
        self,
        name: str,
        tasks: Iterable[Mapping[str, Any] | str],
        edges: Iterable[Mapping[str, Any] | Sequence[Any]],
        parameters: Mapping[str, Any] | None = None,
        version: str | None = None,
    ) -> FlowRunInfo | None:
        """Create a flow run of the flow registered with exactly this structure (arguments
        as for :meth:`register_flow`), naming it by its content hash: one request where
        :meth:`find_flow` and :meth:`create_flow_run_info` take two. None when the server
        has not got that flow (register it, then create the run by its id). A server older
        than ``flow_hash`` (a ``422``: nothing was created) is asked the two-request way,
        by this client from then on. Not retried once sent."""
        if not self._create_by_hash:
            flow_id = self.find_flow(name, tasks, edges, version)
            return None if flow_id is None else self.create_flow_run_info(flow_id, parameters)
        digest = structure_hash(name, tasks, edges, version)
        body = {"flow_hash": digest, "parameters": dict(parameters or {}), "context": {}}
        response, _ = self._request("POST", "/flow_runs", idempotent=False, json_body=body)
        if response.status_code == 404:
            return None
        if response.status_code == 422:
            self._create_by_hash = False
            return self.create_flow_run_of_structure(name, tasks, edges, parameters, version)
        return _flow_run_info(self._check(response).json())

    def get_flow(self, flow_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._json("GET", f"/flows/{flow_id}", idempotent=True)
        return result

    def create_flow_run(
        self,
        flow_id: str,
        parameters: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        scheduled_start_time: datetime | str | None = None,
        state: Mapping[str, Any] | None = None,
    ) -> str:
        """Create a flow run (and its task runs); returns its id. Not retried once sent."""
        return self.create_flow_run_info(flow_id, parameters, context, scheduled_start_time, state).id

    def create_flow_run_info(
        self,
        flow_id: str,
        parameters: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        scheduled_start_time: datetime | str | None = None,
        state: Mapping[str, Any] | None = None,
    ) -> FlowRunInfo:
        """Create a flow run (and its task runs); returns it as ``get_flow_run_info`` would,
        saving the runner a second request. Not retried once sent."""
        body: dict[str, Any] = {"flow_id": flow_id, "parameters": dict(parameters or {}), "context": dict(context or {})}
        if scheduled_start_time is not None:
            body["scheduled_start_time"] = _iso(scheduled_start_time)
        if state is not None:
            body["state"] = dict(state)
        return _flow_run_info(self._json("POST", "/flow_runs", idempotent=False, json_body=body))

    def list_flow_runs(
        self,
        flow_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
        *,
        flow: str | None = None,
        state: str | None = None,
        deployment: str | None = None,
    ) -> list[dict[str, Any]]:
        """Flow runs, newest first; ``flow`` (a name), ``state`` (a type, subtypes included)
        and ``deployment`` (a name) filter them."""
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if flow_id is not None:
            params["flow_id"] = flow_id
        params.update({k: v for k, v in {"flow": flow, "state": state, "deployment": deployment}.items() if v is not None})
        result: list[dict[str, Any]] = self._json("GET", "/flow_runs", idempotent=True, params=params)
        return result

    def get_flow_run_info(self, flow_run_id: str) -> FlowRunInfo:
        """The flow run with its parent task runs; ``info.state`` is a runwright ``State``."""
        return _flow_run_info(self._json("GET", f"/flow_runs/{flow_run_id}", idempotent=True))

    def get_flow_run_task_runs(self, flow_run_id: str) -> list[TaskRunInfo]:
        """Every task run of the flow run, mapped children included."""
        return [_task_run_info(tr) for tr in self._json("GET", f"/flow_runs/{flow_run_id}/task_runs", idempotent=True)]

    def get_task_run_info(self, flow_run_id: str, task_slug: str, map_index: int | None = None) -> TaskRunInfo:
        """Get or create the task run of (flow run, task slug, map index); None means -1.
        ``info.state`` is a runwright ``State``."""
        body = {"flow_run_id": flow_run_id, "task_slug": task_slug, "map_index": -1 if map_index is None else map_index}
        return _task_run_info(self._json("POST", "/task_runs", idempotent=True, json_body=body))

    def get_task_runs(self, flow_run_id: str, task_slug: str, map_indexes: Iterable[int]) -> list[TaskRunInfo]:
        """Get or create the task runs of many map indexes of one task, in one request."""
        body = {"flow_run_id": flow_run_id, "task_slug": task_slug, "map_indexes": list(map_indexes)}
        data = self._json("POST", "/task_runs/batch", idempotent=True, json_body=body)
        return [_task_run_info(tr) for tr in data["task_runs"]]

    def get_task_runs_unless_fresh(
        self, flow_run_id: str, task_slug: str, map_indexes: Iterable[int]
    ) -> list[TaskRunInfo] | None:
        """As :meth:`get_task_runs`, but None when the task has no child runs in the flow run
        yet: then nothing is created, and the caller names its children's ids itself, each
        child created by its first state write (``task_slug`` and ``map_index`` in that write,
        see :meth:`set_task_run_states`). A server older than this (a ``422``) gets or
        creates the runs, as :meth:`get_task_runs` does."""
        indexes = list(map_indexes)
        if self._fresh_children:
            body = {"flow_run_id": flow_run_id, "task_slug": task_slug, "map_indexes": indexes, "fresh_ok": True}
            response, _ = self._request("POST", "/task_runs/batch", idempotent=True, json_body=body)
            if response.status_code != 422:
                data = self._check(response).json()
                if data.get("fresh"):
                    return None
                return [_task_run_info(tr) for tr in data["task_runs"]]
            self._fresh_children = False
        return self.get_task_runs(flow_run_id, task_slug, indexes)

    def release_flow_run_lease(self, flow_run_id: str, lease: str) -> bool:
        """Clear the flow run's lease if ``lease`` still is it; True when it was."""
        data = self._json("POST", f"/flow_runs/{flow_run_id}/lease/release", idempotent=True, json_body={"lease": lease})
        return bool(data["released"])

    # ------------------------------------------------------------------ states

    def _set_state(
        self,
        path: str,
        version: int,
        state: Mapping[str, Any] | State,
        lease: str | None = None,
        retry_for: float = 0.0,
        lease_holder: str | None = None,
    ) -> int:
        data = _state_body(state)
        body: dict[str, Any] = {"state": dict(data), "version": version}
        if lease is not None:
            body["lease"] = lease
            if lease_holder is not None:
                body["lease_holder"] = lease_holder
        response, maybe_applied = self._request("POST", path, idempotent=True, json_body=body, retry_for=retry_for)
        if response.status_code == 409 and maybe_applied:
            current = response.json()
            if current.get("current_version") == version + 1 and current.get("current_state") == _normalised(data):
                return version + 1  # our earlier attempt was applied
        return int(self._check(response).json()["version"])

    def set_flow_run_state(
        self,
        flow_run_id: str,
        version: int,
        state: Mapping[str, Any] | State,
        lease: str | None = None,
        retry_for: float = 0.0,
        lease_holder: str | None = None,
    ) -> int:
        """Write the flow run's state (a ``State``, or its serialized dict) if its version is
        ``version``; returns the new version.

        A winning write stores ``lease`` as the flow run's lease (None clears it), and
        ``lease_holder`` (``"host:pid"``, see :func:`runwright_cloud.resume.this_runner`) with it. Raises
        :class:`VersionConflict` (with the current version and state) otherwise. While the
        server is unreachable (or answers 5xx) the write is retried for ``retry_for`` seconds
        beyond the client's ``retries``.
        """
        return self._set_state(f"/flow_runs/{flow_run_id}/state", version, state, lease, retry_for, lease_holder)

    def set_task_run_state(
        self,
        task_run_id: str,
        version: int,
        state: Mapping[str, Any] | State,
        cache_for: Any = None,
        lease: str | None = None,
        retry_for: float = 0.0,
    ) -> int:
        """Write the task run's state (a ``State``, or its serialized dict) if its version is
        ``version``; returns the new version.

        With ``lease``, only while it is the flow run's lease (else :class:`VersionConflict`).
        ``cache_for`` is accepted for the seed's signature and ignored (the server keeps every
        Cached state; readers filter by age with ``created_after``). ``retry_for`` as for
        :meth:`set_flow_run_state`.
        """
        return self._set_state(f"/task_runs/{task_run_id}/state", version, state, lease, retry_for)

    @staticmethod
    def _states_body(
        writes: Iterable[Mapping[str, Any]], lease: tuple[str, str] | None, results: Sequence[Mapping[str, str]]
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        items = [
            w  # a write as the writer builds it is sent as it is
            if type(w) is dict
            and (len(w) == 3 or (len(w) == 5 and "task_slug" in w and "map_index" in w))
            and type(w.get("state")) in _PLAIN_STATES
            and "task_run_id" in w
            and "version" in w
            else _write_body(w)
            for w in writes
        ]
        body: dict[str, Any] = {"writes": items}
        if lease is not None:
            body["lease"] = {"flow_run_id": lease[0], "token": lease[1]}
        if results:
            body["results"] = [r if type(r) is dict else dict(r) for r in results]
        return items, body

    def encode_task_run_states(
        self,
        writes: Iterable[Mapping[str, Any]],
        lease: tuple[str, str] | None = None,
        results: Sequence[Mapping[str, str]] = (),
    ) -> bytes:
        """The body :meth:`set_task_run_states` sends for these arguments, encoded (the
        background writer encodes the next batch while the previous one is on its way)."""
        items, body = self._states_body(writes, lease, results)
        return _encode_states_body(items, body)

    def set_task_run_states(
        self,
        writes: Iterable[Mapping[str, Any]],
        lease: tuple[str, str] | None = None,
        results: Sequence[Mapping[str, str]] = (),
        retry_for: float = 0.0,
        encoded: bytes | None = None,
        brief: bool = False,
    ) -> list[dict[str, Any]] | None:
        """Batch of ``{"task_run_id", "version", "state"}`` writes, each version-checked on its own.
        A write that also names ``task_slug`` and ``map_index`` (version 0, a new UUID as its
        id, with ``lease``) creates that child run of the lease's flow run unless it exists
        (see :meth:`get_task_runs_unless_fresh`).

        ``lease`` is ``(flow_run_id, token)``: the batch applies only while the token is that
        flow run's lease, else nothing is applied and :class:`LeaseLost` is raised.
        ``results`` are ``{"key": 32 hex digits, "data": base64}`` stored in the same
        transaction (their URIs are ``rwcloud://results/<key>``). ``encoded``: the body
        :meth:`encode_task_run_states` made of the same arguments, sent as it is.

        Returns one ``{"task_run_id", "status": "ok"|"conflict"|"not_found"|"rejected",
        "version", "current_state"?}`` per write, in order. With ``brief``, None when every
        write applied (the server then answers only their count, not one outcome each).
        ``retry_for`` as for :meth:`set_flow_run_state`.
        """
        items: Sequence[Mapping[str, Any]]
        if encoded is None:
            items, body = self._states_body(writes, lease, results)
            data = _encode(body, "POST /task_run_states")
        else:  # the writer's own bodies, encoded already
            items, data = writes if isinstance(writes, list) else list(writes), encoded
        response, maybe_applied = self._request(
            "POST", "/task_run_states", idempotent=True, json_data=data, retry_for=retry_for, brief=brief
        )
        if response.status_code == 409 and lease is not None:
            raise LeaseLost(f"flow run {lease[0]}: its lease was taken over by another runner; nothing was applied")
        answer = self._check(response).json()
        if brief and "results" not in answer:
            if answer.get("applied") != len(items):
                raise ClientError(f"POST /task_run_states: the server answered {answer!r} for {len(items)} writes")
            return None
        results_out: list[dict[str, Any]] = answer["results"]
        if maybe_applied:
            for item, result in zip(items, results_out, strict=True):
                if (
                    result["status"] in ("conflict", "rejected")
                    and result.get("version") == item["version"] + 1
                    and result.get("current_state") == _normalised(item["state"])
                ):
                    result.update(status="ok", current_state=None)
        return results_out

    def record_cached_hits(
        self,
        hits: Sequence[Mapping[str, Any]],
        lease: tuple[str, str] | None = None,
        retry_for: float = 0.0,
    ) -> list[dict[str, Any]] | None:
        """Record cache hits compactly: ``{"task_run_id", "version", "state_id", "state"}``
        each, ``state_id`` the candidate's history row from :meth:`get_cached_candidates`; the
        server copies that Cached state into the task run (``state``, the state the hit
        records, is only compared with the server's answer after a retry). Results as for
        :meth:`set_task_run_states` (``"rejected"``: the candidate is unknown, nothing of
        that hit applied). None when the server has no such route (an older server): send
        the states with :meth:`set_task_run_states`."""
        compact = []
        for h in hits:
            item = {"task_run_id": h["task_run_id"], "version": h["version"], "state_id": h["state_id"]}
            if h.get("task_slug") is not None:  # the hit creates its run (a fresh map's child)
                item["task_slug"], item["map_index"] = h["task_slug"], h["map_index"]
            compact.append(item)
        body: dict[str, Any] = {"hits": compact}
        if lease is not None:
            body["lease"] = {"flow_run_id": lease[0], "token": lease[1]}
        response, maybe_applied = self._request(
            "POST", "/cached_states/hits", idempotent=True, json_body=body, retry_for=retry_for
        )
        if response.status_code in (404, 405) and _route_missing(response):
            return None
        if response.status_code == 409 and lease is not None:
            raise LeaseLost(f"flow run {lease[0]}: its lease was taken over by another runner; nothing was applied")
        results_out: list[dict[str, Any]] = self._check(response).json()["results"]
        if maybe_applied:
            for hit, result in zip(hits, results_out, strict=True):
                if (
                    result["status"] == "conflict"
                    and result.get("version") == hit["version"] + 1
                    and result.get("current_state") == _normalised(hit["state"])
                ):
                    result.update(status="ok", current_state=None)
        return results_out

    def get_flow_run_states(self, flow_run_id: str) -> list[dict[str, Any]]:
        """The flow run's state history ``[{version, state, timestamp}]``, oldest first."""
        result: list[dict[str, Any]] = self._json("GET", f"/flow_runs/{flow_run_id}/states", idempotent=True)
        return result

    def get_task_run_states(self, task_run_id: str) -> list[dict[str, Any]]:
        """The task run's state history ``[{version, state, timestamp}]``, oldest first."""
        result: list[dict[str, Any]] = self._json("GET", f"/task_runs/{task_run_id}/states", idempotent=True)
        return result

    def get_latest_cached_states(
        self,
        flow_name: str,
        task_slug: str,
        created_after: datetime | str,
        map_index: int | None = None,
    ) -> list[dict[str, Any]]:
        """Serialized Cached states of the task written at or after ``created_after``, newest first."""
        params: dict[str, Any] = {"flow_name": flow_name, "task_slug": task_slug, "created_after": _iso(created_after)}
        if map_index is not None:
            params["map_index"] = map_index
        rows = self._json("GET", "/cached_states", idempotent=True, params=params)
        return [row["state"] for row in rows]

    def get_cached_candidates(
        self,
        flow_name: str,
        *,
        limit: int = 20000,
        per_task: int = 5,
        inline_results: bool = True,
        created_after: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """The cache candidates of every task of flows named ``flow_name``, in one request:
        rows ``{task_slug, map_index, state, cache_key, result, created, ...}``, newest first,
        per task and map index the newest state of each distinct cache key (at most
        ``per_task``), small results inline (base64) when ``inline_results``, only states
        stored at or after ``created_after`` when given. Fewer than ``limit`` rows means the
        answer is complete."""
        params: dict[str, Any] = {
            "flow_name": flow_name,
            "limit": limit,
            "per_task": per_task,
            "inline_results": "true" if inline_results else "false",
        }
        if created_after is not None:
            params["created_after"] = _iso(created_after)
        rows: list[dict[str, Any]] = self._json("GET", "/cached_states", idempotent=True, params=params)
        return rows

    def update_flow_run_heartbeat(self, flow_run_id: str) -> bool:
        """Beat for the flow run; True when a cancel was requested (the runner stops)."""
        answer = self._json("POST", f"/flow_runs/{flow_run_id}/heartbeat", idempotent=True)
        return bool(isinstance(answer, dict) and answer.get("cancel"))

    def update_task_run_heartbeat(self, task_run_id: str) -> None:
        self._json("POST", f"/task_runs/{task_run_id}/heartbeat", idempotent=True)

    # ------------------------------------------------------------------ results and logs

    def upload_result(self, data: bytes) -> str:
        """Store opaque bytes on the server; returns their ``rwcloud://results/...`` URI.

        Retried like an idempotent call: a duplicate upload only leaves an unused blob.
        """
        return str(self._json("POST", "/results", idempotent=True, data=bytes(data))["uri"])

    def download_result(self, uri: str) -> bytes:
        response, _ = self._request("GET", "/results", idempotent=True, params={"uri": uri})
        return self._check(response).content

    def write_logs(self, logs: Sequence[Mapping[str, Any]]) -> int:
        """Append log records ``{flow_run_id, task_run_id?, timestamp, level, name, message}``."""
        records = [
            {**record, "timestamp": _iso(record["timestamp"])} if "timestamp" in record else dict(record)
            for record in logs
        ]
        return int(self._json("POST", "/logs", idempotent=False, json_body={"logs": records})["count"])

    def get_flow_run_logs(
        self,
        flow_run_id: str,
        limit: int = 1000,
        offset: int = 0,
        *,
        after_id: int | None = None,
        task: str | None = None,
        level: str | None = None,
    ) -> list[dict[str, Any]]:
        """The run's log records, oldest first; with ``after_id``, those stored after that one
        (in the order stored); ``task`` (a name or slug) and ``level`` (at or above) filter."""
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        params.update({k: v for k, v in {"after_id": after_id, "task": task, "level": level}.items() if v is not None})
        result: list[dict[str, Any]] = self._json("GET", f"/flow_runs/{flow_run_id}/logs", idempotent=True, params=params)
        return result

    def list_flow_summaries(self, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        """Flows by name: ``name``, ``versions``, ``run_count``, ``last_run`` (newest runs first)."""
        result: list[dict[str, Any]] = self._json(
            "GET", "/flows/summary", idempotent=True, params={"limit": limit, "offset": offset}
        )
        return result

    def flow_run_events(self, flow_run_id: str, after: str | None = None) -> Iterator[tuple[str, dict[str, Any], str | None]]:
        """The run's state changes as ``(event, data, id)``: ``"state"`` events, then one
        ``"end"`` once the run is finished (see ``GET /flow_runs/{id}/events``); ``after`` (an
        event id) resumes a stream."""
        from runwright_cloud.event_stream import read_events

        params = {"after": after} if after else None
        response, _ = self._request("GET", f"/flow_runs/{flow_run_id}/events", idempotent=True, params=params, stream=True)
        with response:
            self._check(response)
            yield from read_events(response)


    # ------------------------------------------------------------------ stored code and deployments

    def put_stored_code(self, digest: str, data: bytes) -> bool:
        """Keep ``data`` (whose sha256 hex is ``digest``) in the server's storage; True when
        it was new. Idempotent (content-addressed), so retried like a read."""
        response, _ = self._request("PUT", f"/storage/{digest}", idempotent=True, data=bytes(data))
        return bool(self._check(response).json()["created"])

    def get_stored_code(self, digest: str) -> bytes:
        """The bytes stored under ``digest`` (:class:`NotFoundError` when this tenant has none)."""
        response, _ = self._request("GET", f"/storage/{digest}", idempotent=True)
        return self._check(response).content

    def create_deployment(
        self,
        name: str,
        flow_id: str,
        flow_name: str,
        storage: str,
        storage_ref: Mapping[str, Any],
        schedule: Mapping[str, Any] | None = None,
        parameters: Mapping[str, Any] | None = None,
        queue: str = "default",
        executor: str | None = None,
        concurrency_limit: int | None = None,
    ) -> dict[str, Any]:
        """Register or update the deployment ``name``; the server's answer, with ``changed``
        (False: the same deployment was registered already, nothing changed). Idempotent."""
        body = {
            "name": name,
            "flow_id": flow_id,
            "flow_name": flow_name,
            "storage": storage,
            "storage_ref": dict(storage_ref),
            "schedule": dict(schedule) if schedule is not None else None,
            "parameters": dict(parameters or {}),
            "queue": queue,
            "executor": executor,
            "concurrency_limit": concurrency_limit,
        }
        result: dict[str, Any] = self._json("POST", "/deployments", idempotent=True, json_body=body)
        return result

    def list_deployments(self, limit: int = 1000, offset: int = 0) -> list[dict[str, Any]]:
        """The tenant's deployments by name, each with its ``next_starts``."""
        params = {"limit": limit, "offset": offset}
        result: list[dict[str, Any]] = self._json("GET", "/deployments", idempotent=True, params=params)
        return result

    def get_deployment(self, name: str) -> dict[str, Any]:
        """The deployment ``name`` (:class:`NotFoundError` when there is none)."""
        result: dict[str, Any] = self._json("GET", f"/deployments/{_path_name(name)}", idempotent=True)
        return result

    def pause_deployment(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._json("POST", f"/deployments/{_path_name(name)}/pause", idempotent=True)
        return result

    def resume_deployment(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._json("POST", f"/deployments/{_path_name(name)}/resume", idempotent=True)
        return result

    def delete_deployment(self, name: str) -> dict[str, Any]:
        """Delete the deployment and its runs that never started; ``{name, dropped_runs,
        cancelled_runs}``."""
        result: dict[str, Any] = self._json("DELETE", f"/deployments/{_path_name(name)}", idempotent=False)
        return result

    def run_deployment(self, name: str, parameters: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Create a run of the deployment, due now (its parameters under ``parameters``);
        the new flow run as the server describes it. Not retried once sent."""
        body = {"parameters": dict(parameters or {})}
        result: dict[str, Any] = self._json(
            "POST", f"/deployments/{_path_name(name)}/runs", idempotent=False, json_body=body
        )
        return result


def structure_hash(
    name: str,
    tasks: Iterable[Mapping[str, Any] | str],
    edges: Iterable[Mapping[str, Any] | Sequence[Any]],
    version: str | None = None,
) -> str:
    """The content hash the server gives this structure (``POST /flows``): the sha256 of the
    canonical JSON of ``[name, version, tasks by slug, edges sorted]``, each task
    ``{slug, name}`` and each edge ``{upstream, downstream, key, mapped}`` with the server's
    defaults filled in."""
    task_list = sorted(
        ({"slug": t, "name": t} if isinstance(t, str) else {"slug": t["slug"], "name": t.get("name", "")} for t in tasks),
        key=lambda t: t["slug"],
    )
    edge_list = sorted(
        (
            {"upstream": e["upstream"], "downstream": e["downstream"], "key": e.get("key"), "mapped": bool(e.get("mapped", False))}
            if isinstance(e, Mapping)
            else {"upstream": e[0], "downstream": e[1], "key": None, "mapped": False}
            for e in edges
        ),
        key=lambda e: (e["upstream"], e["downstream"], e["key"] or "", e["mapped"]),
    )
    canonical = json.dumps([name, version, task_list, edge_list], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _route_missing(response: requests.Response) -> bool:
    """True for the answer of a server without the route (not a 404 of a route it has)."""
    try:
        return bool(response.json() == {"detail": "Not Found"} or response.status_code == 405)
    except ValueError:
        return False


def _path_name(name: str) -> str:
    """A deployment name as a path segment (quoted: a name the server cannot have is a 404)."""
    from urllib.parse import quote

    return quote(name, safe="")


def _state_body(state: Any) -> Mapping[str, Any]:
    """A state as the server stores it: a serialized dict as it is; a runwright ``State``
    (the seed's client took those) serialized, its results stored first."""
    if isinstance(state, Mapping):
        return state
    if not isinstance(state, State):
        raise TypeError(f"a state must be a runwright State or its serialized dict, not {type(state).__name__}")
    from runwright_cloud.state_bodies import serialize_for_server

    return serialize_for_server(state, True, "the state written through the client")


def _flow_run_info(data: dict[str, Any]) -> FlowRunInfo:
    """A flow run as the server describes it (GET or create)."""
    return FlowRunInfo(
        id=data["id"],
        flow_id=data["flow_id"],
        flow_name=data["flow_name"],
        parameters=data["parameters"],
        context=data["context"],
        version=data["version"],
        scheduled_start_time=datetime.fromisoformat(data["scheduled_start_time"]),
        serialized_state=data["state"],
        task_runs=[_task_run_info(tr) for tr in data["task_runs"]],
        heartbeat=_parse_optional(data.get("heartbeat")),
        leased=bool(data.get("leased")),
        lease_holder=data.get("lease_holder"),
        agent_id=data.get("agent_id"),
    )
